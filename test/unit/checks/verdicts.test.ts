// Every check verdict on plain facts: healthy, failing, near-threshold and not-applicable cases.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as C from '../../../packages/barmants/src/checks/index.js';
import { ago, facts, repo, settings, sql } from './fixtures.js';

const down = { ok: false as const, error: 'connection refused' };

describe('check verdicts', () => {
  test('a healthy server passes every check, in Barman order', () => {
    const res = C.evaluateChecks(facts(), settings());
    assert.deepEqual(res.filter((c) => c.status !== 'OK'), []);
    assert.deepEqual(res.map((c) => c.name), [
      'PostgreSQL', 'superuser or standard user with backup privileges', 'PostgreSQL streaming', 'wal_level', 'replication slot',
      'directories', 'retention policy settings', 'backup maximum age', 'backup minimum size', 'wal maximum age', 'compression settings',
      'failed backups', 'minimum redundancy requirements', 'systemid coherence', 'receive-wal running', 'archiver errors',
      'WAL continuity', 'free disk space', 'PostgreSQL version supported',
    ]);
  });

  test('PostgreSQL unreachable: FAILED with the error, SQL-only checks left out', () => {
    const res = C.evaluateChecks(facts({ sql: down }), settings());
    assert.deepEqual(C.checkPostgres(facts({ sql: down })), { name: 'PostgreSQL', status: 'FAILED', detail: 'connection refused' });
    const names = res.map((c) => c.name);
    assert.ok(!names.includes('wal_level') && !names.includes('PostgreSQL version supported') && !names.includes('superuser or standard user with backup privileges'));
    assert.equal(res.find((c) => c.name === 'replication slot')?.status, 'FAILED');
  });

  test('backup privileges and streaming', () => {
    assert.equal(C.checkBackupPrivileges(facts({ sql: sql({ superuser: false, backupPrivileges: false }) }))?.status, 'FAILED');
    assert.equal(C.checkBackupPrivileges(facts({ sql: sql({ superuser: false, backupPrivileges: true }) }))?.status, 'OK');
    assert.deepEqual(C.checkStreaming(facts({ streaming: { ok: false, error: 'no pg_hba.conf entry' } })), { name: 'PostgreSQL streaming', status: 'FAILED', detail: 'no pg_hba.conf entry' });
  });

  test('wal_level minimal fails', () => {
    assert.equal(C.checkWalLevel(facts({ sql: sql({ walLevel: 'minimal' }) }))?.detail, "please set it to a higher level than 'minimal'");
    assert.equal(C.checkWalLevel(facts({ sql: sql({ walLevel: 'logical' }) }))?.status, 'OK');
  });

  test('replication slot: missing, not initialised, inactive, lost, not applicable', () => {
    const c = settings();
    assert.equal(C.checkReplicationSlot(facts({ sql: sql({ slot: null, slotExists: false }) }), c)?.detail,
      "replication slot 'barmants' doesn't exist. Please execute 'barmants receive-wal --create-slot pg'");
    const slot = sql().slot!;
    assert.equal(C.checkReplicationSlot(facts({ sql: sql({ slot: { ...slot, restartLsn: null } }) }), c)?.detail, "slot 'barmants' not initialised: is 'receive-wal' running?");
    assert.equal(C.checkReplicationSlot(facts({ sql: sql({ slot: { ...slot, active: false } }) }), c)?.detail, "slot 'barmants' not active: is 'receive-wal' running?");
    assert.equal(C.checkReplicationSlot(facts({ sql: sql({ slot: { ...slot, walStatus: 'lost' } }) }), c)?.status, 'FAILED');
    assert.equal(C.checkReplicationSlot(facts(), settings({ slotName: null })), null);
    // streaming_archiver off and a slot still there: Barman's warning
    assert.equal(C.checkReplicationSlot(facts(), settings({ streamingArchiver: false }))?.status, 'WARNING');
  });

  test('replication slot: retained WAL against explicit and max_slot_wal_keep_size thresholds', () => {
    const slot = sql().slot!;
    const GiB = 1024 ** 3;
    const withRetained = (n: number, keep: number | null = null) => facts({ sql: sql({ slot: { ...slot, retainedBytes: n }, maxSlotWalKeepSizeBytes: keep }) });
    // no limit anywhere: no size verdict
    assert.equal(C.checkReplicationSlot(withRetained(100 * GiB), settings())?.status, 'OK');
    // derived from max_slot_wal_keep_size = 10 GiB: warn at 5, fail at 8
    assert.deepEqual(C.slotThresholds(settings(), 10 * GiB), { warning: 5 * GiB, critical: 8 * GiB });
    assert.equal(C.checkReplicationSlot(withRetained(4 * GiB, 10 * GiB), settings())?.status, 'OK');
    assert.equal(C.checkReplicationSlot(withRetained(6 * GiB, 10 * GiB), settings())?.status, 'WARNING');
    const failed = C.checkReplicationSlot(withRetained(9 * GiB, 10 * GiB), settings())!;
    assert.equal(failed.status, 'FAILED');
    assert.match(failed.detail, /retains 9\.0 GiB of WAL \(warning 5\.0 GiB, critical 8\.0 GiB\)/);
    assert.deepEqual(failed.perfdata, [{ label: 'slot_retained_wal', value: 9 * GiB, uom: 'B', warn: 5 * GiB, crit: 8 * GiB, min: 0 }]);
    // explicit settings win
    const c = settings({ slotRetainedWalWarningBytes: 1 * GiB, slotRetainedWalCriticalBytes: 2 * GiB });
    assert.equal(C.checkReplicationSlot(withRetained(1.5 * GiB, 10 * GiB), c)?.status, 'WARNING');
    assert.equal(C.checkReplicationSlot(withRetained(3 * GiB, 10 * GiB), c)?.status, 'FAILED');
  });

  test('directories', () => {
    assert.equal(C.checkDirectories(facts({ repo: { directories: [{ path: '/b/pg', exists: true, writable: false, mode: 0o500, error: null }] } })).detail, '/b/pg: not writable');
    assert.equal(C.checkDirectories(facts({ repo: { directories: [{ path: '/b/pg', exists: false, writable: false, mode: null, error: 'EACCES' }] } })).detail, '/b/pg: EACCES');
    const loose = C.checkDirectories(facts({ repo: { directories: [{ path: '/b/pg', exists: true, writable: true, mode: 0o755, error: null }] } }));
    assert.deepEqual([loose.status, loose.detail], ['WARNING', '/b/pg: mode 0755, expected 0700']);
  });

  test('retention policy settings', () => {
    assert.equal(C.checkRetentionSettings(settings()).status, 'OK');
    assert.equal(C.checkRetentionSettings(settings({ retentionPolicy: { kind: 'redundancy', count: 1 }, minimumRedundancy: 3 })).status, 'WARNING');
    assert.equal(C.checkRetentionSettings(settings({ retentionPolicy: null })).status, 'OK');
  });

  test('backup maximum age: none, fresh, near the limit (80%), too old, not configured', () => {
    const c = settings({ lastBackupMaximumAgeSec: 86_400 });
    assert.deepEqual(C.checkBackupMaximumAge(facts({ repo: { backups: [] } }), c), {
      name: 'backup maximum age', status: 'FAILED', detail: 'interval provided: 1 day, latest backup age: No available backups',
    });
    const at = (sec: number) => facts({ repo: { backups: [{ ...repo().backups[0]!, endTime: ago(sec) }] } });
    const fresh = C.checkBackupMaximumAge(at(7200), c);
    assert.deepEqual([fresh.status, fresh.detail], ['OK', 'interval provided: 1 day, latest backup age: 2 hours']);
    assert.deepEqual(fresh.perfdata, [{ label: 'last_backup_age', value: 7200, uom: 's', warn: 69120, crit: 86400, min: 0 }]);
    assert.equal(C.checkBackupMaximumAge(at(80_000), c).status, 'WARNING');
    assert.equal(C.checkBackupMaximumAge(at(90_000), c).status, 'FAILED');
    assert.deepEqual(C.checkBackupMaximumAge(at(90_000), settings({ lastBackupMaximumAgeSec: null })), { name: 'backup maximum age', status: 'OK', detail: 'no last_backup_maximum_age provided' });
    // FAILED backups do not count as the latest backup
    const failedOnly = facts({ repo: { backups: [{ ...repo().backups[0]!, status: 'FAILED' }] } });
    assert.equal(C.checkBackupMaximumAge(failedOnly, c).status, 'FAILED');
  });

  test('backup minimum size', () => {
    assert.equal(C.checkBackupMinimumSize(facts(), settings()).detail, '28.6 MiB');
    assert.equal(C.checkBackupMinimumSize(facts({ repo: { backups: [] } }), settings()).detail, '0 B');
    const small = C.checkBackupMinimumSize(facts(), settings({ lastBackupMinimumSizeBytes: 1024 ** 3 }));
    assert.deepEqual([small.status, small.detail], ['FAILED', 'last backup size 28.6 MiB < 1.0 GiB minimum']);
    assert.equal(C.checkBackupMinimumSize(facts(), settings({ lastBackupMinimumSizeBytes: 1000 })).status, 'OK');
    assert.equal(C.checkBackupMinimumSize(facts({ repo: { backups: [] } }), settings({ lastBackupMinimumSizeBytes: 1 })).status, 'FAILED');
  });

  test('wal maximum age', () => {
    assert.equal(C.checkWalMaximumAge(facts({ repo: { lastWal: null } }), settings()).detail, 'No WAL files archived for last backup');
    assert.equal(C.checkWalMaximumAge(facts(), settings()).status, 'OK');
    assert.equal(C.checkWalMaximumAge(facts({ repo: { lastWal: { name: 'x', archivedAt: ago(3000) } } }), settings()).status, 'WARNING');
    assert.equal(C.checkWalMaximumAge(facts({ repo: { lastWal: { name: 'x', archivedAt: ago(4000) } } }), settings()).status, 'FAILED');
    assert.equal(C.checkWalMaximumAge(facts({ repo: { lastWal: null } }), settings({ lastWalMaximumAgeSec: null })).detail, 'no last_wal_maximum_age provided');
  });

  test('compression settings', () => {
    const c = settings({ walCompression: { codec: 'zstd' } });
    assert.equal(C.checkCompression(c, () => null).status, 'OK');
    assert.equal(C.checkCompression(c, () => 'module not found').detail, 'compression = zstd: module not found');
    assert.equal(C.checkCompression(settings(), () => 'never asked').status, 'OK');
  });

  test('failed backups and minimum redundancy', () => {
    const failed = facts({ repo: { backups: [...repo().backups, { ...repo().backups[0]!, backupId: '20261127T110000', status: 'FAILED' }] } });
    assert.deepEqual([C.checkFailedBackups(failed).status, C.checkFailedBackups(failed).detail], ['FAILED', 'there are 1 failed backups']);
    assert.equal(C.checkFailedBackups(facts()).status, 'OK');
    assert.deepEqual(C.checkMinimumRedundancy(facts(), settings({ minimumRedundancy: 2 })), {
      name: 'minimum redundancy requirements', status: 'FAILED', detail: 'have 1 non-incremental backups, expected at least 2',
    });
    assert.equal(C.checkMinimumRedundancy(facts({ repo: { backups: [] } }), settings({ minimumRedundancy: 0 })).status, 'OK');
  });

  test('systemid coherence: server vs identity.json vs catalog vs backups', () => {
    assert.deepEqual(C.checkSystemId(facts()), { name: 'systemid coherence', status: 'OK', detail: '' });
    assert.match(C.checkSystemId(facts({ sql: sql({ systemId: '1' }) })).detail, /streaming DSN/);
    const moved = C.checkSystemId(facts({ sql: sql({ systemId: '99' }), streaming: { ok: true, systemId: '99', timeline: 1, xlogPos: 0n } }));
    assert.deepEqual([moved.status, moved.detail], ['FAILED', 'the system Id of the connected PostgreSQL server changed, stored in "/b/pg/identity.json"']);
    assert.equal(C.checkSystemId(facts({ repo: { catalogSystemId: '5' } })).status, 'FAILED');
    assert.equal(C.checkSystemId(facts({ repo: { identitySystemId: null, catalogSystemId: null } })).detail, 'no system Id stored on disk');
    assert.equal(C.checkSystemId(facts({ sql: down, streaming: down, repo: { identitySystemId: null, catalogSystemId: null } })).detail, 'no system Id available');
    assert.equal(C.checkSystemId(facts({ repo: { identityError: 'identity file is unreadable' } })).status, 'FAILED');
  });

  test('receive-wal running: lock owner alive and heartbeat fresh', () => {
    const c = settings();
    assert.equal(C.checkReceiveWal(facts(), c)?.status, 'OK');
    assert.match(C.checkReceiveWal(facts({ repo: { receiverLock: null } }), c)!.detail, /no receive-wal process/);
    assert.match(C.checkReceiveWal(facts({ repo: { heartbeat: { ...repo().heartbeat!, updatedAt: ago(600) } } }), c)!.detail, /last reported 10 minutes ago/);
    assert.equal(C.checkReceiveWal(facts({ repo: { heartbeat: { ...repo().heartbeat!, state: 'retrying', message: 'connection refused' } } }), c)?.detail, 'receive-wal is retrying: connection refused');
    assert.equal(C.checkReceiveWal(facts(), settings({ streamingArchiver: false })), null);
  });

  test('WAL continuity', () => {
    assert.deepEqual(C.checkWalContinuity(facts()), { name: 'WAL continuity', status: 'OK', detail: 'no gap since 000000010000000000000005' });
    const gap = C.checkWalContinuity(facts({ repo: { walGaps: [{ timeline: 1, from: '000000010000000000000006', to: '000000010000000000000006', count: 1 }] } }));
    assert.deepEqual([gap.status, gap.detail], ['FAILED', '1 WAL segment missing since 000000010000000000000005, first gap 000000010000000000000006']);
    assert.equal(C.checkWalContinuity(facts({ repo: { walCheckedFrom: null } })).detail, 'no WAL archived yet');
  });

  test('archiver errors summarised by reason', () => {
    const files = ['000000010000000000000005.20261127T100000Z.duplicate', '000000010000000000000006.20261127T100000Z.duplicate.1', 'junk.20261127T100000Z.unknown'];
    assert.equal(C.summariseErrorFiles(files), 'duplicate: 2, unknown: 1');
    assert.deepEqual(C.checkArchiverErrors(facts({ repo: { errorFiles: files } })), { name: 'archiver errors', status: 'FAILED', detail: 'duplicate: 2, unknown: 1' });
    assert.equal(C.checkArchiverErrors(facts()).status, 'OK');
  });

  test('free disk space against min_free_space, with a 20% warning margin', () => {
    const c = settings({ minFreeSpaceBytes: 1e9 });
    assert.equal(C.checkFreeSpace(facts({ repo: { freeBytes: 5e9 } }), c).status, 'OK');
    assert.equal(C.checkFreeSpace(facts({ repo: { freeBytes: 1.1e9 } }), c).status, 'WARNING');
    assert.equal(C.checkFreeSpace(facts({ repo: { freeBytes: 0.5e9 } }), c).status, 'FAILED');
    assert.equal(C.checkFreeSpace(facts({ repo: { freeBytes: 1 } }), settings()).status, 'OK');
    assert.equal(C.checkFreeSpace(facts({ repo: { freeBytes: null } }), c).status, 'FAILED');
  });

  test('PostgreSQL version supported: 14 to 18', () => {
    assert.equal(C.checkPgVersion(facts({ sql: sql({ versionNum: 140000, versionText: '14.0' }) }))?.status, 'OK');
    assert.equal(C.checkPgVersion(facts({ sql: sql({ versionNum: 180004, versionText: '18.4' }) }))?.status, 'OK');
    assert.equal(C.checkPgVersion(facts({ sql: sql({ versionNum: 130012, versionText: '13.12' }) }))?.detail, 'PostgreSQL 13.12 is not supported (barmants supports 14 to 18)');
    assert.equal(C.checkPgVersion(facts({ sql: sql({ versionNum: 190000, versionText: '19devel' }) }))?.status, 'FAILED');
    assert.equal(C.checkPgVersion(facts({ sql: down })), null);
  });

  test('catalog line only when the catalog failed', () => {
    assert.equal(C.checkCatalog(facts()), null);
    assert.deepEqual(C.checkCatalog(facts({ repo: { error: 'catalog unavailable' } })), { name: 'catalog', status: 'FAILED', detail: 'catalog unavailable' });
  });
});
