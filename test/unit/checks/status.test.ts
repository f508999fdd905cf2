// status: the object built from facts, its console lines, and the next scheduled backup.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildStatus, nextScheduled, statusLines } from '../../../packages/barmants/src/checks/index.js';
import { NOW, facts, settings } from './fixtures.js';

const cfg = { ...settings(), description: 'main cluster', backupSchedule: '0 2 * * *' };

describe('status', () => {
  test('healthy server', () => {
    const s = buildStatus(facts(), cfg);
    assert.equal(s.pg_version, '17.2');
    assert.equal(s.cluster_state, 'in production');
    assert.equal(s.current_lsn, '0/7000060');
    assert.equal(s.current_wal, '000000010000000000000007');
    assert.equal(s.receiver.state, 'streaming');
    assert.equal(s.receiver.lag_bytes, 0);
    assert.equal(s.wal_rate_per_hour, 2);
    assert.deepEqual(s.minimum_redundancy, { required: 1, have: 1, satisfied: true });
    assert.equal(s.first_backup, '20261127T100000');
    assert.equal(s.retention_policy, 'REDUNDANCY 2');
    assert.ok(s.next_scheduled_backup !== null);
    const lines = statusLines(s, NOW);
    assert.ok(lines.includes('\tPostgreSQL version: 17.2'));
    assert.ok(lines.includes('\tCurrent LSN: 0/7000060'));
    assert.ok(lines.includes('\tRetention policies: enforced (mode: auto, retention: REDUNDANCY 2, WAL retention: MAIN)'));
    assert.ok(lines.includes('\tMinimum redundancy requirements: satisfied (1/1)'));
    assert.ok(lines.includes('\tNo. of available backups: 1'));
  });

  test('unreachable server, no receiver', () => {
    const s = buildStatus(facts({ sql: { ok: false, error: 'refused' }, streaming: { ok: false, error: 'refused' }, repo: { receiverLock: null } }), cfg);
    assert.equal(s.pg_version, null);
    assert.equal(s.receiver.state, 'not running');
    assert.ok(statusLines(s, NOW).includes('\tPostgreSQL version: FAILED trying to get PostgreSQL version (refused)'));
  });
});

describe('nextScheduled', () => {
  const at = (y: number, mo: number, d: number, h: number, mi: number, s = 0) => new Date(y, mo - 1, d, h, mi, s);
  test('daily, hourly steps, weekdays, seconds', () => {
    assert.deepEqual(nextScheduled('0 2 * * *', at(2026, 11, 27, 1, 0)), at(2026, 11, 27, 2, 0));
    assert.deepEqual(nextScheduled('0 2 * * *', at(2026, 11, 27, 2, 0)), at(2026, 11, 28, 2, 0));
    assert.deepEqual(nextScheduled('*/15 * * * *', at(2026, 11, 27, 10, 7, 30)), at(2026, 11, 27, 10, 15));
    // 2026-11-27 is a Friday: next Monday 03:30
    assert.deepEqual(nextScheduled('30 3 * * mon', at(2026, 11, 27, 12, 0)), at(2026, 11, 30, 3, 30));
    assert.deepEqual(nextScheduled('30 3 * * 1-5', at(2026, 11, 27, 12, 0)), at(2026, 11, 30, 3, 30));
    assert.deepEqual(nextScheduled('0 0 1 jan *', at(2026, 11, 27, 12, 0)), at(2027, 1, 1, 0, 0));
    assert.deepEqual(nextScheduled('*/10 * * * * *', at(2026, 11, 27, 12, 0, 1)), at(2026, 11, 27, 12, 0, 10));
    assert.deepEqual(nextScheduled('0 0 * * 7', at(2026, 11, 27, 12, 0)), at(2026, 11, 29, 0, 0));
    assert.equal(nextScheduled('not a cron', NOW), null);
    assert.equal(nextScheduled('0 0 31 2 *', NOW), null);
  });
});
