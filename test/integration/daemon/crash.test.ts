/*
 * SIGKILL of `barmants daemon` (built CLI) in the middle of a scheduled backup, then a restart:
 * the interrupted backup ends FAILED (repaired by the next backup under the backup lock), the next
 * scheduled backup ends DONE, the archive has no gap across the crash, /metrics reports all of it,
 * and a SIGTERM during the following backup still exits 0 with nothing left STARTED.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster } from '../../harness/index.js';
import { waitFor, type TestConfig } from '../../helpers/config.js';
import type { Catalog } from '../../../packages/barmants/src/catalog/index.js';
import { writeAndSwitch } from '../wal/helpers.js';
import { openCatalog, scrape, startDaemon, stopDaemon, twoVersions, writeDaemonConfig, type DaemonRun } from './helpers.js';

const version = twoVersions()[1];
const GRACE_SEC = 3;

describe(`SIGKILL of the daemon during a scheduled backup (PostgreSQL ${version})`, () => {
  const cluster = useCluster({ version, walSegmentSizeMB: 1 });
  let cfg: TestConfig;
  let catalog: Catalog | undefined;
  const daemons: DaemonRun[] = [];

  before(async () => {
    cfg = await writeDaemonConfig(cluster(), {
      schedule: '*/3 * * * * *',
      graceSec: GRACE_SEC,
      // ~25 MB at 8 MB/s: each backup lasts a few seconds, long enough to be caught running.
      options: { bandwidth_limit: 8000 },
      global: { metrics_listen: '127.0.0.1:0' },
    });
  });
  after(async () => {
    for (const d of daemons) if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
    catalog?.close();
    await cfg?.cleanup();
  });

  test('the interrupted backup becomes FAILED, the next one DONE, no WAL gap', async () => {
    const first = await startDaemon(cfg.path);
    daemons.push(first);
    catalog = await openCatalog(cfg.home);
    const cat = catalog;
    await waitFor(() => cat.getHeartbeat('pg')?.state === 'streaming', 'receiver streaming', 30_000);
    const running = await waitFor(() => cat.listBackups('pg', { status: ['STARTED'] }).find((b) => b.pid === first.child.pid), 'a scheduled backup running', 30_000);
    first.child.kill('SIGKILL');
    await first.exited;
    assert.equal(cat.getBackup('pg', running.backupId)!.status, 'STARTED', 'a crash leaves it STARTED');
    await writeAndSwitch(cluster());

    const second = await startDaemon(cfg.path, { metrics: true });
    daemons.push(second);
    await waitFor(() => cat.getBackup('pg', running.backupId)!.status === 'FAILED', `backup ${running.backupId} marked FAILED`, 60_000);
    assert.match(cat.getBackup('pg', running.backupId)!.error ?? '', /interrupted/);
    const done = await waitFor(
      () => cat.listBackups('pg', { status: ['DONE'] }).find((b) => b.backupId > running.backupId),
      'a backup after the crash DONE',
      60_000,
    );
    assert.ok(done.endWal);

    // No gap from the first archived segment to the newest, across the crash and the restart.
    const seg = await writeAndSwitch(cluster());
    await waitFor(() => cat.getWalSegment('pg', seg) !== null, `${seg} archived`, 30_000);
    const a = cat.firstWalSegment('pg')!;
    const b = cat.getWalSegment('pg', seg)!;
    assert.deepEqual(cat.missingSegments('pg', a.timeline, a.segno, b.segno), [], 'no gap');

    const s = await scrape(second.metricsUrl!);
    assert.ok(s.value('barmants_backups', { server: 'pg', status: 'FAILED' })! >= 1);
    assert.ok(s.value('barmants_failed_backups', { server: 'pg' })! >= 1);
    assert.ok(s.value('barmants_backups', { server: 'pg', status: 'DONE' })! >= 1);
    assert.ok(s.value('barmants_last_backup_size_bytes', { server: 'pg' })! > 1024 * 1024);
    assert.ok(s.value('barmants_last_backup_age_seconds', { server: 'pg' })! >= 0);
    assert.ok(s.value('barmants_scheduled_backups_total', { server: 'pg', result: 'done' })! >= 1);
    assert.equal(s.value('barmants_wal_gaps', { server: 'pg' }), 0);

    // SIGTERM now, a backup most likely running: exit 0 within the grace period, nothing left STARTED.
    assert.equal(await stopDaemon(second, (GRACE_SEC + 20) * 1000), 0, second.stderr().slice(-3000));
    assert.deepEqual(cat.listBackups('pg', { status: ['STARTED'] }).map((x) => x.backupId), []);
  });
});
