/*
 * Every other way of recovering (issue 5), with the real CLI on real clusters: xid, LSN, restore
 * point, immediate and exclusive time targets, a target on a later timeline, tablespace
 * relocation, standby mode, --delta after a failed restore, the refusals, a corrupted backup
 * file, and the end of the archive including the .partial of a synchronous receiver.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, readlink, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  chownForCluster, createStandby, startCluster, startClusterFromDataDir, versionsUnderTest, type Cluster, type PgMajor,
} from '../../harness/index.js';
import { Catalog } from '../../../packages/barmants/src/catalog/index.js';
import { catalogPath } from '../../../packages/barmants/src/repository/index.js';
import {
  backupInfo, backupWait, count, fails, ok, pitrConfig, promotedTimeline, serverNow, startReceiver, switchAndArchive,
  treeFingerprint, waitFor, type Receiver, type TestConfig,
} from './helpers.js';

const versions = versionsUnderTest();
const version: PgMajor = versions.includes(16) ? 16 : versions.at(-1)!;
const INCOMPLETE = 'barmants_recovery_INCOMPLETE';

async function tags(c: Cluster): Promise<string[]> {
  return (await c.sql<{ tag: string }>('SELECT tag FROM marks ORDER BY id')).map((r) => r.tag);
}

describe(`recovery targets and safety on PostgreSQL ${version}`, { concurrency: true }, () => {
  describe('one backup, many recoveries', { concurrency: 1 }, () => {
    let work: string;
    let primary: Cluster;
    let cfg: TestConfig;
    let rx: Receiver | undefined;
    let backupId: string;
    let beforeBackup: string;
    const m: { xid?: string; lsn?: string; name?: string; time?: string } = {};
    const open: Cluster[] = [];

    before(async () => {
      work = await mkdtemp(join(tmpdir(), 'barmants-targets-'));
      primary = await startCluster({ version, name: `targets${version}`, conf: ['track_commit_timestamp = on', "timezone = 'Europe/Paris'"] });
      cfg = await pitrConfig(primary, { codec: 'zstd', backupCodec: 'none' });
      const tsDir = await primary.makeTablespaceDir('ts1');
      await primary.sql(`CREATE TABLESPACE ts1 LOCATION '${tsDir}'`);
      await primary.sql('CREATE TABLE inspace TABLESPACE ts1 AS SELECT i FROM generate_series(1, 1000) i');
      await primary.sql('CREATE TABLE marks (id serial PRIMARY KEY, tag text NOT NULL)');
      rx = await startReceiver(cfg, primary);
      beforeBackup = await serverNow(primary);
      backupId = await backupWait(cfg);

      const mark = (tag: string) => primary.sql('INSERT INTO marks (tag) VALUES ($1)', [tag]);
      await mark('after-backup');
      const [x] = await primary.sql<{ xid: string }>("WITH i AS (INSERT INTO marks (tag) VALUES ('xid') RETURNING id) SELECT txid_current()::text AS xid FROM i");
      m.xid = x!.xid;
      await mark('after-xid');
      await mark('lsn');
      m.lsn = (await primary.sql<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l'))[0]!.l;
      await mark('after-lsn');
      await mark('name');
      await primary.sql("SELECT pg_create_restore_point('before_disaster')");
      m.name = 'before_disaster';
      await mark('after-name');
      await mark('time');
      // The exact commit time of 'time': with --exclusive the recovery stops just before it.
      m.time = (await primary.sql<{ t: string }>("SELECT pg_xact_commit_timestamp(xmin)::text AS t FROM marks WHERE tag = 'time'"))[0]!.t;
      await mark('after-time');
      await switchAndArchive(cfg);
    });

    after(async () => {
      await rx?.stop();
      for (const c of open) await c.destroy().catch(() => undefined);
      await primary?.destroy();
      await cfg?.cleanup();
      if (work) await rm(work, { recursive: true, force: true });
    });

    /** recover into a fresh DEST (tablespace relocated beside it), start, return the cluster. */
    async function recoverAndStart(name: string, args: string[], o: { standby?: boolean } = {}): Promise<{ c: Cluster; dest: string; ts: string; out: string }> {
      const dest = join(work, name);
      const ts = join(work, `${name}-ts1`);
      const out = await ok(cfg, ['recover', cfg.server, backupId, dest, '--tablespace', `ts1:${ts}`, ...args]);
      await chownForCluster(dest);
      await chownForCluster(ts);
      const c = await startClusterFromDataDir(dest, version, { waitRecoveryEnd: !o.standby, recoveryTimeoutMs: 120_000, name: `${name}-restored` });
      open.push(c);
      return { c, dest, ts, out };
    }

    test('--target-xid stops after that transaction; the tablespace is relocated', async () => {
      const { c, dest, ts } = await recoverAndStart('xid', ['--target-xid', m.xid!, '--target-action', 'promote']);
      assert.deepEqual(await tags(c), ['after-backup', 'xid']);
      const [{ oid }] = await c.sql<{ oid: number }>("SELECT oid::int FROM pg_tablespace WHERE spcname = 'ts1'");
      assert.equal(await readlink(join(dest, 'pg_tblspc', String(oid))), ts);
      const [{ loc }] = await c.sql<{ loc: string }>(`SELECT pg_tablespace_location(${oid}) AS loc`);
      assert.equal(loc, ts);
      assert.equal(await count(c, 'inspace'), 1000);
      assert.ok((await promotedTimeline(c)) > 1);
      await c.destroy();
    });

    test('--target-lsn stops at that WAL location', async () => {
      const { c } = await recoverAndStart('lsn', ['--target-lsn', m.lsn!, '--target-action', 'promote']);
      assert.deepEqual(await tags(c), ['after-backup', 'xid', 'after-xid', 'lsn']);
      await c.destroy();
    });

    test('--target-name stops at the restore point (target action pause)', async () => {
      const { c } = await recoverAndStart('name', ['--target-name', m.name!, '--target-action', 'pause'], { standby: true });
      await waitFor(async () => (await c.sql<{ p: boolean }>('SELECT pg_is_wal_replay_paused() AS p'))[0]!.p, 'replay to pause at the restore point', 120_000);
      assert.deepEqual(await tags(c), ['after-backup', 'xid', 'after-xid', 'lsn', 'after-lsn', 'name']);
      await c.destroy();
    });

    test('--target-immediate brings back only what the backup holds', async () => {
      const { c, out } = await recoverAndStart('immediate', ['--target-immediate', '--target-action', 'promote']);
      assert.deepEqual(await tags(c), []);
      assert.equal(await count(c, 'inspace'), 1000);
      assert.match(out, /WAL/);
      await c.destroy();
    });

    test('--exclusive --target-time stops just before the commit at that time', async () => {
      const { c } = await recoverAndStart('exclusive', ['--target-time', m.time!, '--exclusive', '--target-action', 'promote']);
      assert.deepEqual(await tags(c), ['after-backup', 'xid', 'after-xid', 'lsn', 'after-lsn', 'name', 'after-name']);
      await c.destroy();
    });

    test('--standby-mode makes a standby that replays WAL archived later', async () => {
      const { c, dest } = await recoverAndStart('standby', ['--standby-mode'], { standby: true });
      assert.equal((await c.sql<{ r: boolean }>('SELECT pg_is_in_recovery() AS r'))[0]!.r, true);
      assert.ok(existsSync(join(dest, 'standby.signal')));
      await waitFor(async () => (await tags(c)).includes('after-time'), 'the standby to replay the archive', 120_000);
      await primary.sql("INSERT INTO marks (tag) VALUES ('for-the-standby')");
      await switchAndArchive(cfg);
      // Without --get-wal the standby reads DEST/barmants_wal: feed it what was archived since.
      const walDir = join(dest, 'barmants_wal');
      const have = new Set(await readdir(walDir));
      const cat = Catalog.open(catalogPath(cfg.home));
      try {
        for (const s of cat.listWalSegments(cfg.server)) {
          if (have.has(s.name)) continue;
          await ok(cfg, ['get-wal', cfg.server, s.name, '--output-directory', walDir]);
        }
      } finally {
        cat.close();
      }
      await chownForCluster(walDir);
      await waitFor(async () => (await tags(c)).includes('for-the-standby'), 'the standby to replay newly archived WAL', 60_000).catch(async (e) => {
        const log = await readFile(c.logFile, 'utf8').catch(() => '');
        throw new Error(`${(e as Error).message}; barmants_wal: ${(await readdir(walDir)).join(' ')}\n--- standby log ---\n${log.split('\n').slice(-15).join('\n')}`);
      });
      assert.equal((await c.sql<{ r: boolean }>('SELECT pg_is_in_recovery() AS r'))[0]!.r, true);
      await c.destroy();
    });

    test('refusals leave DEST unchanged', async () => {
      // non-empty DEST
      const full = join(work, 'full');
      await mkdir(full);
      await writeFile(join(full, 'precious.txt'), 'do not touch');
      let fp = await treeFingerprint(full);
      let r = await fails(cfg, ['recover', cfg.server, backupId, full, '--tablespace', `ts1:${join(work, 'full-ts')}`]);
      assert.match(r.stderr, /not empty/);
      assert.equal(await treeFingerprint(full), fp);
      assert.ok(!existsSync(join(work, 'full-ts')));

      // the running primary's own data directory (live postmaster.pid)
      r = await fails(cfg, ['recover', cfg.server, backupId, primary.dataDir, '--delta', '--tablespace', `ts1:${join(work, 'live-ts')}`]);
      assert.match(r.stderr, /running PostgreSQL|postmaster\.pid/);
      assert.ok(!existsSync(join(primary.dataDir, INCOMPLETE)) && !existsSync(join(primary.dataDir, 'barmants_wal')));

      // a target time before the backup ended: the error names the earliest reachable point
      const empty = join(work, 'empty');
      await mkdir(empty);
      fp = await treeFingerprint(empty);
      r = await fails(cfg, ['recover', cfg.server, backupId, empty, '--target-time', beforeBackup, '--tablespace', `ts1:${join(work, 'empty-ts')}`]);
      const info = await backupInfo(cfg, backupId);
      assert.match(r.stderr, /before the end of backup/);
      assert.match(r.stderr, /earliest reachable point/);
      assert.ok(r.stderr.includes(String(info.end_time).slice(0, 19)), `the end time ${info.end_time} is named:\n${r.stderr}`);
      assert.equal(await treeFingerprint(empty), fp);
      // and without a backup id, none qualifies
      r = await fails(cfg, ['recover', cfg.server, empty, '--target-time', beforeBackup]);
      assert.match(r.stderr, /earliest reachable point/);
      assert.equal(await treeFingerprint(empty), fp);
    });

    test('a corrupted stored file stops the restore, naming it; --delta finishes it once repaired', async () => {
      const lines = (await readFile(join(cfg.home, cfg.server, 'base', backupId, 'files.jsonl'), 'utf8')).split('\n').filter(Boolean);
      const victim = lines.map((l) => JSON.parse(l)).find((f) => f.ts === null && f.type === 'file' && /^base\/\d+\/\d+$/.test(f.path) && f.size >= 8192)!;
      const stored = join(cfg.home, cfg.server, 'base', backupId, 'data', victim.path); // backup codec none
      const saved = join(work, 'saved-victim');
      await copyFile(stored, saved);
      const buf = await readFile(stored);
      buf[100] = buf[100]! ^ 0xff;
      await writeFile(stored, buf);
      const dest = join(work, 'corrupt');
      const ts = join(work, 'corrupt-ts');
      try {
        const r = await fails(cfg, ['recover', cfg.server, backupId, dest, '--tablespace', `ts1:${ts}`, '--target-immediate', '--target-action', 'promote']);
        assert.ok(r.stderr.includes(victim.path), `the file is named:\n${r.stderr}`);
        assert.ok(existsSync(join(dest, INCOMPLETE)), 'DEST is marked incomplete');
        // A plain rerun refuses the half-restored DEST and says why.
        const again = await fails(cfg, ['recover', cfg.server, backupId, dest, '--tablespace', `ts1:${ts}`, '--target-immediate']);
        assert.match(again.stderr, /did not finish|INCOMPLETE/);
      } finally {
        await copyFile(saved, stored);
      }
      await ok(cfg, ['recover', cfg.server, backupId, dest, '--delta', '--tablespace', `ts1:${ts}`, '--target-immediate', '--target-action', 'promote']);
      assert.ok(!existsSync(join(dest, INCOMPLETE)), 'the marker is gone after a successful --delta');
      await chownForCluster(dest);
      await chownForCluster(ts);
      const c = await startClusterFromDataDir(dest, version, { waitRecoveryEnd: true, name: 'delta-restored' });
      open.push(c);
      assert.equal(await count(c, 'inspace'), 1000);
      await c.destroy();
    });

    // Last: it removes WAL from the archive.
    test('a gap in the archive is refused before DEST is touched', async () => {
      await rx?.stop();
      rx = undefined;
      const info = await backupInfo(cfg, backupId);
      const cat = Catalog.open(catalogPath(cfg.home));
      let victim: string;
      try {
        const after = cat.listWalSegments(cfg.server).filter((s) => s.name > info.end_wal);
        assert.ok(after.length >= 2, `segments after the backup: ${after.map((s) => s.name).join(' ')}`);
        victim = after[0]!.name;
        const dir = join(cfg.home, cfg.server, 'wals', victim.slice(0, 16));
        for (const f of await readdir(dir)) if (f.startsWith(victim)) await unlink(join(dir, f));
        cat.deleteWalSegments(cfg.server, [victim]);
      } finally {
        cat.close();
      }
      const dest = join(work, 'gap');
      const r = await fails(cfg, ['recover', cfg.server, backupId, dest, '--tablespace', `ts1:${join(work, 'gap-ts')}`]);
      assert.ok(r.stderr.includes(victim), `the missing segment is named:\n${r.stderr}`);
      assert.ok(!existsSync(dest) && !existsSync(join(work, 'gap-ts')), 'nothing was created');
    });
  });

  describe('end of the archive includes the .partial of a synchronous receiver', () => {
    test('every acknowledged commit comes back', { timeout: 300_000 }, async () => {
      const work = await mkdtemp(join(tmpdir(), 'barmants-sync-'));
      // Set after initdb: the harness's own role setup would otherwise wait for a standby forever.
      const c = await startCluster({ version, name: `sync${version}` });
      await c.sql("ALTER SYSTEM SET synchronous_standby_names = 'barmants_receive_wal'");
      await c.sql('SELECT pg_reload_conf()');
      await waitFor(async () => (await c.sql<{ s: string }>("SELECT current_setting('synchronous_standby_names') AS s"))[0]!.s === 'barmants_receive_wal', 'the setting to apply');
      const cfg = await pitrConfig(c, { codec: 'lz4', backupCodec: 'zstd' });
      let rx: Receiver | undefined = await startReceiver(cfg, c);
      let restored: Cluster | undefined;
      try {
        await waitFor(async () => (await c.sql<{ s: string }>("SELECT sync_state AS s FROM pg_stat_replication WHERE application_name = 'barmants_receive_wal'"))[0]?.s === 'sync', 'the receiver to be the synchronous standby');
        await backupWait(cfg);
        await c.sql('CREATE TABLE acked (n int)');
        const N = 25;
        // Each statement is its own transaction: it returns only once the receiver has fsynced it.
        const t0 = Date.now();
        for (let i = 1; i <= N; i++) await c.sql('INSERT INTO acked VALUES ($1)', [i]);
        if (process.env.PITR_DEBUG) console.error(`${N} synchronous commits in ${Date.now() - t0} ms`);
        assert.equal(await rx.stop(), 0, rx.log());
        rx = undefined;
        await c.kill();
        const dest = join(work, 'restored');
        const out = await ok(cfg, ['recover', cfg.server, dest]);
        assert.match(out, /partial/i, `the plan says the .partial is used:\n${out}`);
        await chownForCluster(dest);
        restored = await startClusterFromDataDir(dest, version, { waitRecoveryEnd: true, recoveryTimeoutMs: 120_000, name: 'sync-restored' });
        assert.equal(await count(restored, 'acked'), N);
        const [{ mx }] = await restored.sql<{ mx: number }>('SELECT max(n)::int AS mx FROM acked');
        assert.equal(mx, N);
      } finally {
        await rx?.stop();
        await restored?.destroy().catch(() => undefined);
        await c.destroy();
        await cfg.cleanup();
        await rm(work, { recursive: true, force: true });
      }
    });
  });

  describe('a target on a later timeline', () => {
    // The simplest real history: the receiver streams from a standby, which is promoted while it
    // streams; the backup was taken on timeline 1 (from the primary), the target lies on timeline 2.
    test('--target-tli latest follows the history file to the restore point on timeline 2', { timeout: 300_000 }, async () => {
      const work = await mkdtemp(join(tmpdir(), 'barmants-tli-'));
      const primary = await startCluster({ version, name: `tli${version}`, conf: ['wal_keep_size = 512'] });
      let standby: Cluster | undefined;
      let restored: Cluster | undefined;
      let rx: Receiver | undefined;
      const cfgP = await pitrConfig(primary, { codec: 'gzip' });
      try {
        standby = await createStandby(primary);
        // Same repository and server name; the receiver (and later switch-wal) talk to the standby.
        const cfgS: TestConfig = { ...cfgP, path: join(cfgP.home, 'standby.conf') };
        await writeFile(cfgS.path, (await readFile(cfgP.path, 'utf8')).replaceAll(`port=${primary.port} `, `port=${standby.port} `), { mode: 0o600 });
        rx = await startReceiver(cfgS, standby);
        await backupWait(cfgP);
        await primary.sql("CREATE TABLE tl (tag text); INSERT INTO tl VALUES ('tli1')");
        await primary.stop('fast'); // a clean stop sends everything to the standby first
        await standby.promote();
        await waitFor(async () => !(await standby!.sql<{ r: boolean }>('SELECT pg_is_in_recovery() AS r'))[0]!.r, 'the standby to be promoted');
        await standby.sql("INSERT INTO tl VALUES ('tli2')");
        await standby.sql("SELECT pg_create_restore_point('on_tli2')");
        await standby.sql("INSERT INTO tl VALUES ('after')");
        await switchAndArchive(cfgS);
        assert.equal(await rx.stop(), 0, rx.log());
        rx = undefined;
        assert.ok(existsSync(join(cfgP.home, cfgP.server, 'wals', '00000002.history')), 'the history file is archived');

        const dest = join(work, 'restored');
        await ok(cfgS, ['recover', cfgS.server, dest, '--target-name', 'on_tli2', '--target-tli', 'latest', '--target-action', 'promote']);
        await chownForCluster(dest);
        restored = await startClusterFromDataDir(dest, version, { waitRecoveryEnd: true, recoveryTimeoutMs: 120_000, name: 'tli-restored' });
        assert.deepEqual((await restored.sql<{ tag: string }>('SELECT tag FROM tl ORDER BY tag')).map((r) => r.tag), ['tli1', 'tli2']);
        assert.ok((await promotedTimeline(restored)) >= 3, 'promoted after timeline 2');
      } finally {
        await rx?.stop();
        await restored?.destroy().catch(() => undefined);
        await standby?.destroy().catch(() => undefined);
        await primary.destroy();
        await cfgP.cleanup();
        await rm(work, { recursive: true, force: true });
      }
    });
  });
});
