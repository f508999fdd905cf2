// Retention applied to a synthetic repository: what is deleted (backup dirs, catalog rows, WAL
// files) and what is kept (minimum_redundancy, keep, running backups, WAL still needed).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { applyRetention } from '../../../packages/barmants/src/maintenance/index.js';
import { nullLogger } from '../../../packages/barmants/src/log/index.js';
import { makeRepo, wal, type Repo } from './fixture.js';

const NOW = new Date('2026-11-30T12:00:00Z');
const day = (d: number) => ({
  backupId: `202611${String(d).padStart(2, '0')}T010000`,
  beginTime: `2026-11-${String(d).padStart(2, '0')}T01:00:00+00:00`,
  endTime: `2026-11-${String(d).padStart(2, '0')}T01:10:00+00:00`,
  beginWal: wal(d * 10),
  endWal: wal(d * 10 + 1),
});

describe('applyRetention on a synthetic repository', () => {
  const repos: Repo[] = [];
  after(async () => { for (const r of repos) await r.cleanup(); });

  test('REDUNDANCY 2: the oldest DONE backups and the WAL before the oldest kept backup go; running and kept stay', async () => {
    const repo = await makeRepo({ retention_policy: 'REDUNDANCY 2', minimum_redundancy: '1', failed_backup_retention: '1 day' });
    repos.push(repo);
    await repo.addBackup({ ...day(20), status: 'DONE' });
    await repo.addBackup({ ...day(21), status: 'DONE', keep: 'full' });
    await repo.addBackup({ ...day(22), status: 'DONE' });
    await repo.addBackup({ ...day(23), status: 'FAILED', error: 'boom' }); // older than 1 day: goes
    await repo.addBackup({ ...day(24), status: 'DONE' });
    await repo.addBackup({ ...day(25), status: 'DONE' });
    await repo.addBackup({ ...day(29), status: 'FAILED', endTime: '2026-11-30T11:00:00+00:00' }); // recent: stays
    await repo.addBackup({ ...day(30), status: 'STARTED', endTime: null, endWal: null, pid: 999_999 });
    for (const n of [199, 200, 201, 205, 210, 211, 215, 219, 220, 221, 240, 250, 300]) await repo.addSegment(n, { bytes: 1024 });

    const out = await applyRetention({ server: repo.server, layout: repo.layout, catalog: repo.catalog, logger: nullLogger(), now: NOW });
    const ids = repo.catalog.listBackups('pg').map((b) => b.backupId);
    assert.deepEqual(out.deleted.map((d) => d.backupId).sort(), ['20261120T010000', '20261122T010000', '20261123T010000']);
    for (const d of out.deleted) assert.ok(d.reason.length > 10, 'every deletion carries its reason');
    assert.deepEqual(ids, ['20261121T010000', '20261124T010000', '20261125T010000', '20261129T010000', '20261130T010000']);
    assert.equal(existsSync(repo.layout.backupDir('20261120T010000')), false);
    assert.equal(existsSync(repo.layout.backupDir('20261124T010000')), true);
    // keep:full 21 pins WAL from its begin (210) on; everything before goes, files and rows.
    const left = repo.catalog.listWalSegments('pg').map((s) => s.name);
    assert.deepEqual(left, [210, 211, 215, 219, 220, 221, 240, 250, 300].map((n) => wal(n)));
    assert.equal(existsSync(repo.layout.walFilePath(wal(205), 'none')), false);
    assert.equal(existsSync(repo.layout.walFilePath(wal(210), 'none')), true);
    assert.equal(out.walRemoved, 4);
  });

  test('minimum_redundancy always wins over the policy', async () => {
    const repo = await makeRepo({ retention_policy: 'RECOVERY WINDOW OF 1 DAYS', minimum_redundancy: '3' });
    repos.push(repo);
    for (const d of [1, 2, 3, 4]) await repo.addBackup({ ...day(d), status: 'DONE' });
    const out = await applyRetention({ server: repo.server, layout: repo.layout, catalog: repo.catalog, logger: nullLogger(), now: NOW });
    // Window: 04 is the newest before the window start and stays VALID; 01-03 are obsolete,
    // but only one may go with 3 DONE backups required.
    assert.deepEqual(out.deleted.map((d) => d.backupId), ['20261101T010000']);
    assert.equal(repo.catalog.listBackups('pg', { status: ['DONE'] }).length, 3);
  });

  test('no policy: no backup is deleted, WAL before the oldest backup goes, the archive is never emptied', async () => {
    const repo = await makeRepo();
    repos.push(repo);
    for (const n of [5, 6, 7]) await repo.addSegment(n, { bytes: 1024 });
    let out = await applyRetention({ server: repo.server, layout: repo.layout, catalog: repo.catalog, logger: nullLogger(), now: NOW });
    assert.equal(out.walRemoved, 0, 'no backup yet: all WAL kept');
    await repo.addBackup({ ...day(1), beginWal: wal(6), endWal: wal(6), status: 'DONE' });
    out = await applyRetention({ server: repo.server, layout: repo.layout, catalog: repo.catalog, logger: nullLogger(), now: NOW });
    assert.deepEqual(out.deleted, []);
    assert.deepEqual(repo.catalog.listWalSegments('pg').map((s) => s.name), [wal(6), wal(7)]);
  });

  test('a running backup holding the lock defers deletions to the next pass', async () => {
    const { acquireLock } = await import('../../../packages/barmants/src/repository/index.js');
    const repo = await makeRepo({ retention_policy: 'REDUNDANCY 1' });
    repos.push(repo);
    for (const d of [1, 2]) await repo.addBackup({ ...day(d), status: 'DONE' });
    const lock = await acquireLock(repo.layout.lockFile('backup'), { purpose: 'backup' });
    try {
      const out = await applyRetention({ server: repo.server, layout: repo.layout, catalog: repo.catalog, logger: nullLogger(), now: NOW });
      assert.deepEqual(out.deleted, []);
      assert.equal(out.deferred.length, 1);
      assert.equal(repo.catalog.listBackups('pg').length, 2);
    } finally {
      await lock.release();
    }
    const out = await applyRetention({ server: repo.server, layout: repo.layout, catalog: repo.catalog, logger: nullLogger(), now: NOW });
    assert.deepEqual(out.deleted.map((d) => d.backupId), ['20261101T010000']);
  });
});
