// Retention policies against Barman's semantics: REDUNDANCY, RECOVERY WINDOW, minimum_redundancy,
// keep annotations, running and failed backups, and WAL retention (`main`).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  evaluateRetention,
  recoveryWindow,
  walRetention,
  describePolicy,
  type RetentionBackup,
} from '../../../packages/barmants/src/retention/index.js';

const NOW = new Date('2026-11-30T12:00:00Z');
const wal = (n: number, tli = 1): string => `${tli.toString(16).toUpperCase().padStart(8, '0')}00000000${n.toString(16).toUpperCase().padStart(8, '0')}`;

function b(day: number, extra: Partial<RetentionBackup> = {}): RetentionBackup {
  const d = String(day).padStart(2, '0');
  return {
    backupId: `202611${d}T010000`,
    status: 'DONE',
    beginTime: `2026-11-${d} 01:00:00+00:00`,
    endTime: `2026-11-${d} 01:10:00.123456+00:00`,
    keep: null,
    beginWal: wal(day * 2),
    endWal: wal(day * 2),
    timeline: 1,
    ...extra,
  };
}
const verdictOf = (r: ReturnType<typeof evaluateRetention>, day: number): string =>
  r.verdicts.get(`202611${String(day).padStart(2, '0')}T010000`)!.verdict;
const ids = (r: ReturnType<typeof evaluateRetention>): string[] => r.toDelete.map((d) => d.backupId);

describe('REDUNDANCY', () => {
  test('newest N DONE are VALID, older OBSOLETE, deleted oldest first with a reason', () => {
    const r = evaluateRetention({ policy: { kind: 'redundancy', count: 2 }, minimumRedundancy: 0, backups: [b(1), b(2), b(3), b(4)], now: NOW });
    assert.deepEqual([1, 2, 3, 4].map((d) => verdictOf(r, d)), ['OBSOLETE', 'OBSOLETE', 'VALID', 'VALID']);
    assert.deepEqual(ids(r), ['20261101T010000', '20261102T010000']);
    assert.equal(r.toDelete[0]!.reason, 'obsolete under REDUNDANCY 2: 3 newer DONE backups');
    assert.equal(r.toDelete[1]!.reason, 'obsolete under REDUNDANCY 2: 2 newer DONE backups');
    assert.deepEqual(r.warnings, []);
  });

  test('input order does not matter', () => {
    const r = evaluateRetention({ policy: { kind: 'redundancy', count: 1 }, minimumRedundancy: 0, backups: [b(3), b(1), b(2)], now: NOW });
    assert.deepEqual(ids(r), ['20261101T010000', '20261102T010000']);
  });

  test('N is raised to minimum_redundancy with a warning', () => {
    const r = evaluateRetention({ policy: { kind: 'redundancy', count: 1 }, minimumRedundancy: 3, backups: [b(1), b(2), b(3), b(4)], now: NOW });
    assert.deepEqual([1, 2, 3, 4].map((d) => verdictOf(r, d)), ['OBSOLETE', 'VALID', 'VALID', 'VALID']);
    assert.deepEqual(ids(r), ['20261101T010000']);
    assert.match(r.warnings[0]!, /redundancy \(1\) is lower than the required minimum redundancy \(3\)/);
  });

  test('non-DONE backups are NONE, not counted, never deleted', () => {
    const r = evaluateRetention({
      policy: { kind: 'redundancy', count: 1 },
      minimumRedundancy: 0,
      backups: [b(1, { status: 'STARTED' }), b(2), b(3, { status: 'WAITING_FOR_WALS' }), b(4, { status: 'DELETING' }), b(5, { status: 'FAILED' }), b(6, { status: 'STARTED', endTime: null })],
      now: NOW,
    });
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((d) => verdictOf(r, d)), ['NONE', 'VALID', 'NONE', 'NONE', 'NONE', 'NONE']);
    assert.deepEqual(ids(r), []);
    assert.match(r.verdicts.get('20261101T010000')!.reason, /in progress/);
  });

  test('kept backups are never obsolete but take a place in the count (as in Barman)', () => {
    const r = evaluateRetention({
      policy: { kind: 'redundancy', count: 2 },
      minimumRedundancy: 0,
      backups: [b(1, { keep: 'full' }), b(2), b(3, { keep: 'standalone' }), b(4)],
      now: NOW,
    });
    assert.deepEqual([1, 2, 3, 4].map((d) => verdictOf(r, d)), ['KEEP:FULL', 'OBSOLETE', 'KEEP:STANDALONE', 'VALID']);
    assert.deepEqual(ids(r), ['20261102T010000']);
  });

  test('no policy: every DONE backup is VALID, nothing deleted', () => {
    const r = evaluateRetention({ policy: null, minimumRedundancy: 0, backups: [b(1), b(2, { keep: 'full' })], now: NOW });
    assert.deepEqual([1, 2].map((d) => verdictOf(r, d)), ['VALID', 'KEEP:FULL']);
    assert.deepEqual(ids(r), []);
  });

  test('REDUNDANCY 0 with minimum_redundancy 0 deletes every unkept DONE backup', () => {
    const r = evaluateRetention({ policy: { kind: 'redundancy', count: 0 }, minimumRedundancy: 0, backups: [b(1), b(2)], now: NOW });
    assert.deepEqual(ids(r), ['20261101T010000', '20261102T010000']);
  });
});

describe('RECOVERY WINDOW', () => {
  const week = recoveryWindow(7, 'days'); // window opens 2026-11-23 12:00Z

  test('window arithmetic follows Barman (a month is 31 days)', () => {
    const seconds = (p: ReturnType<typeof recoveryWindow>) => (p.kind === 'window' ? p.seconds : null);
    assert.equal(seconds(recoveryWindow(1, 'months')), 31 * 86400);
    assert.equal(seconds(recoveryWindow(2, 'weeks')), 14 * 86400);
    assert.equal(describePolicy(week), 'RECOVERY WINDOW OF 7 DAYS');
    assert.equal(describePolicy({ kind: 'redundancy', count: 3 }), 'REDUNDANCY 3');
  });

  test('backups in the window plus the newest one older than it are VALID', () => {
    const r = evaluateRetention({ policy: week, minimumRedundancy: 0, backups: [b(10), b(20), b(22), b(25), b(28)], now: NOW });
    assert.deepEqual([10, 20, 22, 25, 28].map((d) => verdictOf(r, d)), ['OBSOLETE', 'OBSOLETE', 'VALID', 'VALID', 'VALID']);
    assert.match(r.verdicts.get('20261122T010000')!.reason, /newest backup ended before the window start/);
    assert.deepEqual(ids(r), ['20261110T010000', '20261120T010000']);
    assert.match(r.toDelete[0]!.reason, /obsolete under RECOVERY WINDOW OF 7 DAYS/);
  });

  test('all backups older than the window: only the newest stays', () => {
    const r = evaluateRetention({ policy: week, minimumRedundancy: 0, backups: [b(1), b(2), b(3)], now: NOW });
    assert.deepEqual(ids(r), ['20261101T010000', '20261102T010000']);
  });

  test('minimum_redundancy wins: old backups become POTENTIALLY_OBSOLETE', () => {
    const r = evaluateRetention({ policy: week, minimumRedundancy: 3, backups: [b(1), b(2), b(3), b(25)], now: NOW });
    assert.deepEqual([1, 2, 3, 25].map((d) => verdictOf(r, d)), ['OBSOLETE', 'POTENTIALLY_OBSOLETE', 'VALID', 'VALID']);
    assert.deepEqual(ids(r), ['20261101T010000']);
  });

  test('kept backups outside the window stay kept and are not deleted', () => {
    const r = evaluateRetention({ policy: week, minimumRedundancy: 0, backups: [b(1, { keep: 'standalone' }), b(2, { keep: 'full' }), b(3), b(4), b(25)], now: NOW });
    assert.deepEqual([1, 2, 3, 4, 25].map((d) => verdictOf(r, d)), ['KEEP:STANDALONE', 'KEEP:FULL', 'OBSOLETE', 'VALID', 'VALID']);
    assert.deepEqual(ids(r), ['20261103T010000']);
  });

  test('a DONE backup without end time is treated as inside the window (keeps more)', () => {
    const r = evaluateRetention({ policy: week, minimumRedundancy: 0, backups: [b(1), b(2, { endTime: null, beginTime: null })], now: NOW });
    assert.deepEqual([1, 2].map((d) => verdictOf(r, d)), ['VALID', 'VALID']);
  });
});

describe('minimum_redundancy on the deletion list', () => {
  test('never leaves fewer DONE backups than required, newest obsolete ones are spared', () => {
    // Kept backups are not deleted but count as DONE backups still available.
    const r = evaluateRetention({
      policy: { kind: 'redundancy', count: 3 },
      minimumRedundancy: 3,
      backups: [b(1), b(2), b(3, { keep: 'full' }), b(4, { keep: 'full' }), b(5)],
      now: NOW,
    });
    assert.deepEqual([1, 2, 3, 4, 5].map((d) => verdictOf(r, d)), ['OBSOLETE', 'OBSOLETE', 'KEEP:FULL', 'KEEP:FULL', 'VALID']);
    assert.deepEqual(ids(r), ['20261101T010000', '20261102T010000']);
  });

  test('window with minimum_redundancy larger than what exists: nothing deleted', () => {
    const r = evaluateRetention({ policy: recoveryWindow(1, 'days'), minimumRedundancy: 5, backups: [b(1), b(2), b(3)], now: NOW });
    assert.deepEqual(ids(r), []);
    assert.deepEqual([1, 2, 3].map((d) => verdictOf(r, d)), ['POTENTIALLY_OBSOLETE', 'POTENTIALLY_OBSOLETE', 'VALID']);
  });
});

describe('FAILED backups', () => {
  test('never deleted without failedBackupRetentionSec (Barman never removes them)', () => {
    const r = evaluateRetention({ policy: { kind: 'redundancy', count: 1 }, minimumRedundancy: 0, backups: [b(1, { status: 'FAILED' }), b(2)], now: NOW });
    assert.deepEqual(ids(r), []);
  });

  test('older than failedBackupRetentionSec: deleted with a reason, recent ones stay', () => {
    const r = evaluateRetention({
      policy: null,
      minimumRedundancy: 5,
      backups: [b(1, { status: 'FAILED' }), b(29, { status: 'FAILED', endTime: null }), b(2, { status: 'FAILED', endTime: null, beginTime: null })],
      now: NOW,
      failedBackupRetentionSec: 7 * 86400,
    });
    assert.deepEqual(ids(r), ['20261101T010000']);
    assert.match(r.toDelete[0]!.reason, /FAILED backup older than failed backup retention \(604800 s\)/);
    assert.match(r.warnings[0]!, /20261102T010000 has no begin or end time/);
  });
});

describe('WAL retention (main)', () => {
  const segs = Array.from({ length: 30 }, (_, i) => wal(i + 1));

  test('WAL before the oldest remaining backup may go; history files stay', () => {
    const r = walRetention({
      backups: [{ ...b(5), verdict: 'VALID' }, { ...b(8), verdict: 'VALID' }],
      segments: ['00000002.history', ...segs, `${wal(3)}.00000028.backup`],
    });
    assert.equal(r.removableBefore, wal(10));
    assert.deepEqual(r.removable, [...segs.slice(0, 9), `${wal(3)}.00000028.backup`]);
    assert.deepEqual(r.keepRanges, []);
    assert.match(r.reason, /begin of backup 20261105T010000/);
  });

  test('keep:standalone backups keep their begin..end range only', () => {
    const r = walRetention({
      backups: [{ ...b(2, { keep: 'standalone', endWal: wal(5) }), verdict: 'KEEP:STANDALONE' }, { ...b(8), verdict: 'VALID' }],
      segments: segs,
    });
    assert.equal(r.removableBefore, wal(16));
    assert.deepEqual(r.keepRanges, [{ from: wal(4), to: wal(5) }]);
    assert.deepEqual(r.removable, [...segs.slice(0, 3), ...segs.slice(5, 15)]);
  });

  test('keep:full pins every WAL from its begin on', () => {
    const r = walRetention({
      backups: [{ ...b(2, { keep: 'full' }), verdict: 'KEEP:FULL' }, { ...b(8), verdict: 'VALID' }],
      segments: segs,
    });
    assert.equal(r.removableBefore, wal(4));
    assert.deepEqual(r.removable, segs.slice(0, 3));
  });

  test('a running backup protects the WAL it started from; FAILED and DELETING do not', () => {
    const r = walRetention({
      backups: [
        { ...b(1, { status: 'FAILED' }), verdict: 'NONE' },
        { ...b(2, { status: 'DELETING' }), verdict: 'NONE' },
        { ...b(6, { status: 'STARTED', endWal: null }), verdict: 'NONE' },
        { ...b(9), verdict: 'VALID' },
      ],
      segments: segs,
    });
    assert.equal(r.removableBefore, wal(12));
  });

  test('no backup left: nothing is removed, and the reason says why', () => {
    const r = walRetention({ backups: [{ ...b(3, { keep: 'standalone' }), verdict: 'KEEP:STANDALONE' }], segments: segs });
    assert.equal(r.removableBefore, null);
    assert.deepEqual(r.removable, []);
    assert.deepEqual(r.keepRanges, [{ from: wal(6), to: wal(6) }]);
    assert.match(r.reason, /never emptied/);
    assert.equal(walRetention({ backups: [], segments: segs }).removableBefore, null);
  });

  test('a later timeline is never removed by an anchor on an older one', () => {
    const r = walRetention({
      backups: [{ ...b(5), verdict: 'VALID' }, { ...b(6, { beginWal: wal(2, 2), timeline: 2 }), verdict: 'VALID' }],
      segments: [wal(9), wal(10), wal(11), wal(1, 2), wal(2, 2), wal(3, 2)],
    });
    assert.equal(r.removableBefore, wal(10));
    assert.deepEqual(r.removable, [wal(9)]);
  });
});
