// Fault injection: the real CLI killed with SIGKILL at each named failpoint (BARMANTS_FAILPOINT),
// then the same command run again without it. Asserts that nothing acknowledged is lost and the
// repository is self-consistent afterwards (catalog rows, files on disk, WAL bytes).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useCluster, versionsUnderTest, generateLoad, type Cluster } from '../harness/index.js';
import { barmants, CLI, waitFor, writeTestConfig, type TestConfig } from '../helpers/config.js';
import { Catalog } from '../../packages/barmants/src/catalog/index.js';
import { catalogPath } from '../../packages/barmants/src/repository/index.js';
import { FAILPOINTS, type FailpointName } from '../../packages/barmants/src/failpoint/index.js';

const version = versionsUnderTest().at(-1)!;
const SEGMENT = /^[0-9A-F]{24}$/;

function withCatalog<T>(cfg: TestConfig, fn: (c: Catalog) => T): T {
  const cat = Catalog.open(catalogPath(cfg.home), { readonly: true });
  try {
    return fn(cat);
  } finally {
    cat.close();
  }
}

async function tmpFiles(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true }).catch(() => [] as string[])).map(String).filter((f) => f.endsWith('.tmp'));
}

/** Writes a row and closes the segment holding it: the receiver then completes one more segment. */
async function writeAndSwitch(c: Cluster): Promise<string> {
  await c.sql('CREATE TABLE IF NOT EXISTS t_faults (x int)');
  await c.sql('INSERT INTO t_faults VALUES (1)');
  return (await c.sql<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal() - 1) AS f'))[0]!.f;
}

interface Child { child: ChildProcess; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>; stderr(): string }

function startReceiver(cfg: TestConfig, failpoint?: FailpointName): Child {
  const env = { ...process.env };
  if (failpoint) env.BARMANTS_FAILPOINT = failpoint;
  else delete env.BARMANTS_FAILPOINT;
  const child = spawn(process.execPath, [CLI, '-c', cfg.path, 'receive-wal', cfg.server], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  return { child, exited, stderr: () => err };
}

describe(`crash at each failpoint on PostgreSQL ${version}`, () => {
  const cluster = useCluster({ version, name: `faults${version}`, walSegmentSizeMB: 1, conf: ['wal_keep_size = 1024'] });
  let cfg: TestConfig;
  let walCfg: TestConfig;
  before(async () => {
    await generateLoad(cluster(), { rows: 20_000, batches: 2 });
    cfg = await writeTestConfig(cluster());
    walCfg = await writeTestConfig(cluster(), {
      home: await mkdtemp(join(tmpdir(), 'barmants-faults-wal-')),
      options: { streaming_archiver: 'on', slot_name: 'barmants_faults', create_slot: 'auto', compression: 'zstd', wal_flush_interval: '100 ms' },
    });
  });
  after(async () => {
    await cfg?.cleanup();
    await walCfg?.cleanup();
  });

  test('every failpoint has a description', () => {
    for (const f of FAILPOINTS) assert.ok(f.description.length > 0, f.name);
  });

  for (const fp of ['backup-mid-copy', 'backup-before-done'] as const) {
    test(`backup killed at ${fp}: marked FAILED, the next backup is DONE and verifies`, async () => {
      const crashed = await barmants(cfg, ['backup', 'pg'], { env: { BARMANTS_FAILPOINT: fp } });
      assert.equal(crashed.signal, 'SIGKILL', `expected death by SIGKILL:\n${crashed.stderr}`);
      const started = withCatalog(cfg, (c) => c.listBackups('pg', { status: ['STARTED'] }));
      assert.equal(started.length, 1, 'the killed backup is left STARTED');
      const killedId = started[0]!.backupId;

      const r = await barmants(cfg, ['-f', 'json', 'backup', 'pg', '--wal'], { timeoutMs: 120_000 });
      assert.equal(r.code, 0, r.stderr);
      const fresh = JSON.parse(r.stdout).pg as { backup_id: string; status: string };
      assert.equal(fresh.status, 'DONE');
      const killed = withCatalog(cfg, (c) => c.getBackup('pg', killedId));
      assert.equal(killed?.status, 'FAILED');
      assert.equal(JSON.parse(await readFile(join(cfg.home, 'pg', 'base', killedId, 'backup.info'), 'utf8')).status, 'FAILED');
      const v = await barmants(cfg, ['verify-backup', 'pg', fresh.backup_id]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
      assert.deepEqual(await tmpFiles(join(cfg.home, 'pg', 'base')), []);
    });
  }

  test('delete killed at delete-after-mark: the next delete finishes it', async () => {
    const done = withCatalog(cfg, (c) => c.listBackups('pg', { status: ['DONE'] }));
    assert.ok(done.length >= 2);
    const victim = done[0]!.backupId;
    const dir = join(cfg.home, 'pg', 'base', victim);
    const crashed = await barmants(cfg, ['delete', 'pg', victim], { env: { BARMANTS_FAILPOINT: 'delete-after-mark' } });
    assert.equal(crashed.signal, 'SIGKILL', `expected death by SIGKILL:\n${crashed.stderr}`);
    assert.equal(withCatalog(cfg, (c) => c.getBackup('pg', victim))?.status, 'DELETING');
    assert.ok(existsSync(dir), 'the directory is still there');

    const r = await barmants(cfg, ['delete', 'pg', victim]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(withCatalog(cfg, (c) => c.getBackup('pg', victim)), null);
    assert.ok(!existsSync(dir), 'the directory is gone');
    const v = await barmants(cfg, ['verify-backup', 'pg', 'latest']);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  });

  for (const fp of ['wal-after-store-before-catalog', 'wal-after-catalog-before-unlink'] as const) {
    test(`receive-wal killed at ${fp}: the restarted receiver archives without gap or difference`, async () => {
      const c = cluster();
      const streaming = join(walCfg.home, 'pg', 'streaming');
      const first = startReceiver(walCfg, fp);
      try {
        // Close segments until the receiver completes one and dies at the failpoint.
        await waitFor(async () => first.child.exitCode !== null || first.child.signalCode !== null || (await writeAndSwitch(c), false), 'the receiver to hit the failpoint', 60_000, 200);
      } finally {
        first.child.kill('SIGKILL');
      }
      const died = await first.exited;
      assert.equal(died.signal, 'SIGKILL', `expected death by SIGKILL:\n${first.stderr()}`);
      // The crash left the completed segment in streaming/.
      const pending = (await readdir(streaming)).filter((n) => SEGMENT.test(n));
      assert.ok(pending.length >= 1, `a complete segment left in streaming/: ${pending.join(' ')}`);
      const crashedSeg = pending[0]!;
      const rowAtCrash = withCatalog(walCfg, (cat) => cat.getWalSegment('pg', crashedSeg));
      if (fp === 'wal-after-store-before-catalog') assert.equal(rowAtCrash, null);
      else assert.ok(rowAtCrash, 'the catalog row was written before the crash');

      const second = startReceiver(walCfg);
      try {
        await waitFor(async () => {
          const left = (await readdir(streaming)).filter((n) => SEGMENT.test(n));
          return left.length === 0 && withCatalog(walCfg, (cat) => pending.every((n) => cat.getWalSegment('pg', n) !== null));
        }, `${pending.join(' ')} archived after restart`, 60_000);
        // And it keeps receiving.
        const next = await writeAndSwitch(c);
        await waitFor(() => withCatalog(walCfg, (cat) => cat.getWalSegment('pg', next) !== null), `${next} archived`, 60_000);
        const stop = await barmants(walCfg, ['receive-wal', '--stop', 'pg']);
        assert.equal(stop.code, 0, stop.stderr);
        assert.equal((await second.exited).code, 0, second.stderr());
      } finally {
        second.child.kill('SIGKILL');
      }

      const segs = withCatalog(walCfg, (cat) => cat.listWalSegments('pg'));
      const gaps = withCatalog(walCfg, (cat) => cat.missingSegments('pg', segs[0]!.timeline, segs[0]!.segno, segs.at(-1)!.segno));
      assert.deepEqual(gaps, []);
      // Byte-identical to the server's pg_wal, read back through get-wal.
      const out = await mkdtemp(join(tmpdir(), 'barmants-faults-getwal-'));
      try {
        let compared = 0;
        for (const s of segs) {
          const theirs = join(c.dataDir, 'pg_wal', s.name);
          if (!existsSync(theirs)) continue;
          const g = await barmants(walCfg, ['get-wal', '-o', out, 'pg', s.name]);
          assert.equal(g.code, 0, g.stderr);
          assert.ok((await readFile(join(out, s.name))).equals(await readFile(theirs)), `${s.name} differs from the server's`);
          compared++;
        }
        assert.ok(compared >= 1 && segs.some((s) => s.name === crashedSeg));
      } finally {
        await rm(out, { recursive: true, force: true });
      }
      assert.deepEqual(await readdir(join(walCfg.home, 'pg', 'errors')).catch(() => []), [], 'nothing set aside as duplicate');
      assert.deepEqual(await tmpFiles(join(walCfg.home, 'pg', 'wals')), []);
    });
  }
});
