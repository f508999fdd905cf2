/*
 * Retention killed mid-deletion: `barmants cron` SIGKILLed at each retention failpoint while a
 * receiver streams (as under the daemon), then run again. The next pass must leave a consistent
 * repository: no catalog row naming a missing file, WAL files the catalog forgot reported as
 * orphans, no backup left half-deleted, `check` passing, and the remaining backup recoverable.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chownForCluster, generateLoad, startClusterFromDataDir, useCluster } from '../harness/index.js';
import { barmants, waitFor, writeTestConfig, type CliRun, type TestConfig } from '../helpers/config.js';
import { writeAndSwitch } from '../integration/wal/helpers.js';
import type { FailpointName } from '../../packages/barmants/src/failpoint/index.js';
import { faultVersion, repositoryState, startCliChild, withCatalog, type CliChild } from './helpers.js';

const version = faultVersion(17);

interface OrphanJson { kind: string; what: string; movedTo: string | null }
interface PassJson {
  server: string;
  errors: string[];
  retention: { deleted: { backupId: string }[]; walRemoved: number } | null;
  orphans: OrphanJson[] | null;
}

describe(`retention killed mid-deletion on PostgreSQL ${version}`, () => {
  const cluster = useCluster({ version, name: `faults-ret${version}`, walSegmentSizeMB: 1, conf: ['wal_keep_size = 1024'] });
  let cfg: TestConfig;
  let receiver: CliChild | undefined;

  before(async () => {
    cfg = await writeTestConfig(cluster(), {
      options: {
        streaming_archiver: 'on', slot_name: 'barmants_ret', create_slot: 'auto', compression: 'gzip', wal_flush_interval: '100 ms',
        retention_policy: 'REDUNDANCY 1',
      },
    });
    receiver = startCliChild(cfg, ['receive-wal', 'pg']);
  });
  after(async () => {
    await receiver?.stop();
    await cfg?.cleanup();
  });

  /** A new DONE backup after a few segments of WAL: the previous backup and its WAL become obsolete. */
  async function newerBackup(): Promise<string> {
    await generateLoad(cluster(), { rows: 5000, batches: 4, switches: 3 });
    const r = await barmants(cfg, ['-f', 'json', 'backup', 'pg', '--wait', '--wait-timeout', '60'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    const b = JSON.parse(r.stdout).pg as { backup_id: string; status: string };
    assert.equal(b.status, 'DONE');
    return b.backup_id;
  }

  async function cron(failpoint?: FailpointName): Promise<CliRun> {
    return barmants(cfg, ['-f', 'json', 'cron'], failpoint ? { env: { BARMANTS_FAILPOINT: failpoint } } : {});
  }

  async function killedAt(failpoint: FailpointName): Promise<void> {
    const r = await cron(failpoint);
    assert.equal(r.signal, 'SIGKILL', `cron must die at ${failpoint}:\n${r.stdout}${r.stderr}`);
  }

  /** The pass after the crash: succeeds, and leaves the repository consistent. */
  async function repairingPass(): Promise<PassJson> {
    const r = await cron();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const pass = (JSON.parse(r.stdout) as PassJson[]).find((p) => p.server === 'pg')!;
    assert.deepEqual(pass.errors, []);
    return pass;
  }

  async function assertConsistent(kept: string): Promise<void> {
    const state = await repositoryState(cfg);
    assert.deepEqual(state.rowsWithoutFile, [], 'every catalog WAL row has its file');
    assert.deepEqual(state.backupRowsWithoutDir, [], 'every catalog backup row has its directory');
    assert.deepEqual(state.dirsWithoutRow, [], 'every backup directory has its row');
    assert.deepEqual(state.deleting, [], 'no backup left DELETING');
    assert.deepEqual(state.backups.map((b) => b.backupId), [kept], 'REDUNDANCY 1 keeps the newest backup only');
    // check runs while the receiver keeps streaming: wait until it has caught up with the crash's aftermath.
    let last: CliRun | null = null;
    await waitFor(async () => {
      last = await barmants(cfg, ['check', 'pg']);
      return last.code === 0;
    }, 'check to pass', 30_000, 500).catch((e: Error) => {
      throw new Error(`${e.message}\n${last?.stdout}${last?.stderr}`);
    });
  }

  test('the repository is made of two DONE backups and a continuous archive', async () => {
    const rx = receiver!;
    await waitFor(async () => {
      if (rx.child.exitCode !== null) throw new Error(`receive-wal exited: ${rx.stderr()}`);
      return (await cluster().sql("SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'")).length === 1;
    }, 'the receiver to stream', 30_000);
    await newerBackup();
    await newerBackup();
    const state = await repositoryState(cfg);
    assert.deepEqual(state.backups.map((b) => b.status), ['DONE', 'DONE']);
    assert.deepEqual(state.rowsWithoutFile, []);
    assert.deepEqual(state.filesWithoutRow, []);
    const check = await barmants(cfg, ['check', 'pg']);
    assert.equal(check.code, 0, check.stdout + check.stderr);
  });

  test('killed after choosing a backup to delete: nothing is removed, the next pass deletes it', async () => {
    const before = await repositoryState(cfg);
    const [obsolete, kept] = before.backups.map((b) => b.backupId);
    await killedAt('retention-before-delete-backup');
    const after = await repositoryState(cfg);
    assert.deepEqual(after.backups, before.backups, 'the backups are untouched');
    assert.ok(after.walRows >= before.walRows, 'no WAL row removed');
    assert.deepEqual(after.rowsWithoutFile, []);

    const pass = await repairingPass();
    assert.deepEqual(pass.retention?.deleted.map((d) => d.backupId), [obsolete]);
    assert.ok((pass.retention?.walRemoved ?? 0) >= 3, `the WAL only the deleted backup needed goes too (${pass.retention?.walRemoved})`);
    assert.deepEqual(pass.orphans, []);
    await assertConsistent(kept!);
  });

  test('killed between the WAL rows and their files: the files left are orphans, reported, and nothing points to a missing file', async () => {
    const previous = (await repositoryState(cfg)).backups[0]!.backupId;
    const kept = await newerBackup();
    await killedAt('wal-retention-after-catalog-before-unlink');
    const crashed = await repositoryState(cfg);
    assert.deepEqual(crashed.backups.map((b) => b.backupId), [kept], 'the obsolete backup was deleted before the WAL');
    assert.ok(!existsSync(join(cfg.home, 'pg', 'base', previous)));
    assert.deepEqual(crashed.rowsWithoutFile, [], 'the rows went first');
    assert.ok(crashed.filesWithoutRow.length >= 3, `WAL files left without their rows: ${crashed.filesWithoutRow.join(' ')}`);

    const pass = await repairingPass();
    const reported = (pass.orphans ?? []).filter((o) => o.kind === 'wal-without-row').map((o) => o.what.replace(/^wals\//, ''));
    const still = (await repositoryState(cfg)).filesWithoutRow;
    // Every leftover is either reported by the pass or gone from wals/.
    for (const f of crashed.filesWithoutRow) assert.ok(reported.includes(f) || !still.includes(f), `${f} neither reported nor removed`);
    assert.deepEqual(still.filter((f) => !reported.includes(f)), [], 'no unreported orphan');
    console.log(`retention crash between WAL rows and files: ${crashed.filesWithoutRow.length} WAL files left without rows, ${reported.length} reported as orphans by the next pass`);
    await assertConsistent(kept);

    // The orphans' own advice: rebuild-catalog indexes them again, and the next pass removes them for good.
    const rebuilt = await barmants(cfg, ['rebuild-catalog', 'pg']);
    assert.equal(rebuilt.code, 0, rebuilt.stdout + rebuilt.stderr);
    const cleaned = await repairingPass();
    assert.deepEqual(cleaned.orphans, []);
    assert.deepEqual((await repositoryState(cfg)).filesWithoutRow, [], 'the leftover WAL files are gone');
    await assertConsistent(kept);
  });

  test('the backup retention kept is recoverable', async () => {
    const c = cluster();
    const before = Number((await c.sql<{ n: string }>('SELECT count(*)::text AS n FROM barmants_load'))[0]!.n);
    const marker = await writeAndSwitch(c);
    await waitFor(() => withCatalog(cfg, (cat) => cat.getWalSegment('pg', marker) !== null), `${marker} archived`, 30_000);
    const dest = await mkdtemp(join(tmpdir(), 'barmants-faults-ret-restore-'));
    try {
      const r = await barmants(cfg, ['recover', 'pg', 'latest', dest, '--no-get-wal'], { timeoutMs: 120_000 });
      assert.equal(r.code, 0, r.stderr);
      await chownForCluster(dest);
      const restored = await startClusterFromDataDir(dest, version, { waitRecoveryEnd: true, recoveryTimeoutMs: 60_000, name: `faults-ret${version}-restored` });
      try {
        const rows = await restored.sql<{ n: string }>('SELECT count(*)::text AS n FROM barmants_load');
        assert.equal(Number(rows[0]!.n), before);
      } finally {
        await restored.destroy();
      }
    } finally {
      await rm(dest, { recursive: true, force: true });
    }
  });

  test('killed after marking the backup DELETING: the next pass finishes the delete', async () => {
    const kept = await newerBackup();
    await killedAt('delete-after-mark');
    const crashed = await repositoryState(cfg);
    assert.equal(crashed.deleting.length, 1, 'the obsolete backup is left DELETING');
    try {
      await repairingPass();
      const check = await barmants(cfg, ['check', 'pg']);
      assert.deepEqual((await repositoryState(cfg)).deleting, [], `the interrupted delete is finished; check says:\n${check.stdout}`);
      await assertConsistent(kept);
    } finally {
      // Leave no DELETING row behind, whatever the pass did.
      for (const id of (await repositoryState(cfg)).deleting) await barmants(cfg, ['delete', 'pg', id]);
    }
  });
});
