/*
 * Base backups and WAL streaming with pg-replication alone, on every major: a backup written to
 * a plain directory, completed with WAL we streamed, starts as a working cluster holding the data;
 * its manifest checksums match the files; WAL streamed from a slot under load is byte-identical to
 * the server's pg_wal, even for a slow consumer; feedback shows in pg_stat_replication.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ReplicationClient, createFileChecksum, parseManifest, segmentOf, segmentStart, parseLsn } from '../../../packages/pg-replication/src/index.js';
import { chownForCluster, generateLoad, startBackgroundLoad, startClusterFromDataDir, switchWal, useCluster, versionsUnderTest, type Cluster, type PgMajor } from '../../harness/index.js';
import { relocateTablespaces, streamWal, takePlainBackup } from './helpers.js';

const run = promisify(execFile);
const PG15_BIN = '/usr/lib/postgresql/15/bin';

async function scratch(name: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), `barmants-${name}-`));
  after(() => rm(d, { recursive: true, force: true }));
  return d;
}

function repl(c: Cluster) {
  return { host: c.host, port: c.port, user: c.replUser, password: c.replPassword };
}

async function checkManifest(dataDir: string, tsDirs: Map<number, string>, manifest: Buffer): Promise<number> {
  const m = parseManifest(manifest);
  let checked = 0;
  for (const f of m.files) {
    let path = join(dataDir, f.path);
    const ts = /^pg_tblspc\/(\d+)\/(.*)$/.exec(f.path);
    if (ts) path = join(tsDirs.get(Number(ts[1]))!, ts[2]!);
    const content = await readFile(path);
    assert.equal(content.length, f.size, `size of ${f.path}`);
    const sum = createFileChecksum(f.checksumAlgorithm);
    sum.update(content);
    assert.equal(sum.digest(), f.checksum, `checksum of ${f.path}`);
    checked++;
  }
  return checked;
}

/** Creates a physical slot reserving WAL and returns where it starts. */
async function slotStart(c: Cluster, rc: ReplicationClient, slot: string): Promise<bigint> {
  await rc.createPhysicalSlot(slot, { reserveWal: true });
  const [{ lsn }] = await c.sql<{ lsn: string }>('SELECT restart_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  return parseLsn(lsn);
}

/** Compares a completed segment with the server's own copy in pg_wal. */
function sameAsServer(c: Cluster) {
  return async (name: string, ours: Buffer) => {
    const theirs = await readFile(join(c.dataDir, 'pg_wal', name));
    assert.ok(ours.equals(theirs), `segment ${name} differs from the server's`);
  };
}

describe('base backup and WAL streaming', { concurrency: true }, () => {
  for (const version of versionsUnderTest()) {
    describe(`PostgreSQL ${version}`, () => {
      const cluster = useCluster({ version, name: `bb${version}` });

      test('plain backup + streamed WAL starts as a working cluster', async () => {
        const c = cluster();
        const tsDir = await c.makeTablespaceDir('ts1');
        await c.sql(`CREATE TABLESPACE ts1 LOCATION '${tsDir}'`);
        await c.sql('CREATE TABLE in_ts (i int) TABLESPACE ts1');
        await c.sql('INSERT INTO in_ts SELECT generate_series(1, 5000)');
        await generateLoad(c, { table: 'before_backup', rows: 20000, batches: 4 });
        const dir = join(await scratch(`bb${version}`), 'data');
        // As pg_basebackup -X stream does: a temporary slot, made before the backup starts, keeps
        // the backup's WAL on the server until we have streamed it (a checkpoint may come between).
        const rc2 = await ReplicationClient.connect(repl(c));
        await rc2.createPhysicalSlot(`bb_tmp_${version}`, { reserveWal: true, temporary: true });
        const rc = await ReplicationClient.connect(repl(c));
        const res = await takePlainBackup(rc, dir, { label: `barmants test ${version}` });
        assert.ok(res.endLsn >= res.startLsn);
        assert.equal(res.tablespaces.length, 2);
        assert.equal(res.tablespaces.at(-1)!.oid, null, 'main data directory comes last');
        assert.ok(res.manifest && res.manifest.length > 0);
        const checked = await checkManifest(dir, res.tablespaceDirs, res.manifest!);
        await writeFile(join(dir, 'backup_manifest'), res.manifest!);
        assert.ok(checked > 500, `manifest lists ${checked} files`);
        // WAL from the backup's start to its end, completed by a switch.
        await switchWal(c);
        const segSize = await c.walSegmentSize();
        const endSegEnd = segmentStart(segmentOf(res.endLsn, segSize) + 1n, segSize);
        const wal = await streamWal(rc2, { start: res.startLsn, until: endSegEnd, timeline: res.startTimeline, segSize, walDir: join(dir, 'pg_wal'), slot: `bb_tmp_${version}` });
        assert.ok(wal.complete.length >= 1);
        await rc.close();
        await rc2.close();
        if (version === 15 && existsSync(join(PG15_BIN, 'pg_verifybackup')) && res.tablespaceDirs.size === 1) {
          // pg_verifybackup expects tablespaces under pg_tblspc/<oid>: give it the layout it knows.
          const { symlink } = await import('node:fs/promises');
          const [[oid, tdir]] = [...res.tablespaceDirs];
          await symlink(tdir, join(dir, 'pg_tblspc', String(oid)));
          const out = await run(join(PG15_BIN, 'pg_verifybackup'), [dir]);
          assert.match(out.stdout, /backup successfully verified/);
          await rm(join(dir, 'pg_tblspc', String(oid)));
        }
        await relocateTablespaces(dir, res.tablespaceDirs);
        for (const tdir of res.tablespaceDirs.values()) await chownForCluster(tdir);
        await chmod(`${dir}.ts`, 0o711);
        const restored = await startClusterFromDataDir(dir, version as PgMajor);
        try {
          const [{ n }] = await restored.sql<{ n: string }>('SELECT count(*)::text AS n FROM before_backup');
          assert.equal(n, '20000');
          const [{ m }] = await restored.sql<{ m: string }>('SELECT count(*)::text AS m FROM in_ts');
          assert.equal(m, '5000');
        } finally {
          await restored.destroy();
        }
      });

      test('WAL from a slot under load is byte-identical to pg_wal; feedback is visible', async () => {
        const c = cluster();
        const segSize = await c.walSegmentSize();
        const rc = await ReplicationClient.connect({ ...repl(c), applicationName: 'bytecheck' });
        const slot = `bytes_${version}`;
        const start = await slotStart(c, rc, slot);
        const load = startBackgroundLoad(c, { table: 'streamed', rowsPerTx: 200, switchEveryMs: 300 });
        const dir = await scratch(`wal${version}`);
        // Each segment is compared as soon as it is complete, before its flush is reported: the
        // slot still holds it, so the server cannot have recycled it yet.
        const res = await streamWal(rc, { start, until: start + 4n * BigInt(segSize), timeline: 1, segSize, walDir: dir, slot, onSegment: sameAsServer(c) });
        const rows = await load.stop();
        assert.ok(rows > 0);
        assert.ok(res.complete.length >= 4, `completed ${res.complete.length} segments`);
        const [{ restart }] = await c.sql<{ restart: string }>(`SELECT restart_lsn::text AS restart FROM pg_replication_slots WHERE slot_name = '${slot}'`);
        assert.ok(parseLsn(restart) > start, 'slot restart_lsn advanced with our flush feedback');
        await rc.dropSlot(slot).catch(() => undefined);
        await rc.close();
      });

      test('a slow consumer stays connected and gets identical bytes', async () => {
        const c = cluster();
        await c.sql(`ALTER SYSTEM SET wal_sender_timeout = '2s'`);
        await c.sql('SELECT pg_reload_conf()');
        const segSize = await c.walSegmentSize();
        const rc = await ReplicationClient.connect({ ...repl(c), applicationName: 'slowpoke' });
        const slot = `slow_${version}`;
        const start = await slotStart(c, rc, slot);
        const load = startBackgroundLoad(c, { table: 'slow', rowsPerTx: 500, switchEveryMs: 400 });
        const dir = await scratch(`slow${version}`);
        let pollErr: unknown = null;
        let sawFeedback = false;
        const poll = setInterval(() => {
          c.sql<{ flush: string | null }>(`SELECT flush_lsn::text AS flush FROM pg_stat_replication WHERE application_name = 'slowpoke'`).then(
            (r) => {
              if (r[0]?.flush && parseLsn(r[0].flush) > 0n) sawFeedback = true;
            },
            (e) => (pollErr = e),
          );
        }, 200);
        try {
          const res = await streamWal(rc, {
            start,
            until: start + 3n * BigInt(segSize),
            timeline: 1,
            segSize,
            walDir: dir,
            slot,
            perChunkDelayMs: 3,
            statusIntervalMs: 500,
            onSegment: sameAsServer(c),
          });
          assert.ok(res.complete.length >= 2);
        } finally {
          clearInterval(poll);
          await load.stop();
          await rc.dropSlot(slot).catch(() => undefined);
          await rc.close();
          await c.sql(`ALTER SYSTEM RESET wal_sender_timeout`);
          await c.sql('SELECT pg_reload_conf()');
        }
        assert.equal(pollErr, null);
        assert.ok(sawFeedback, 'pg_stat_replication showed our flush position');
      });
    });
  }
});

describe('non-default wal_segment_size', () => {
  const version = versionsUnderTest().at(-1)!;
  const cluster = useCluster({ version, walSegmentSizeMB: 1, name: 'seg1mb' });
  test('1 MB segments stream byte-identical', async () => {
    const c = cluster();
    const segSize = await c.walSegmentSize();
    assert.equal(segSize, 1 << 20);
    const rc = await ReplicationClient.connect(repl(c));
    assert.equal(await rc.walSegmentSize(), 1 << 20);
    const start = await slotStart(c, rc, 'seg1mb');
    await generateLoad(c, { rows: 30000, batches: 6, switches: 3 });
    const dir = await scratch('seg1mb');
    const res = await streamWal(rc, {
      start,
      until: start + 3n * BigInt(segSize),
      timeline: 1,
      segSize,
      walDir: dir,
      slot: 'seg1mb',
      onSegment: async (name, ours) => {
        assert.equal((await stat(join(c.dataDir, 'pg_wal', name))).size, segSize);
        await sameAsServer(c)(name, ours);
      },
    });
    assert.ok(res.complete.length >= 3);
    await rc.dropSlot('seg1mb').catch(() => undefined);
    await rc.close();
  });
});
