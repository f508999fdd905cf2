// Recovery planning on synthetic catalogs: backup choice, target checks, timelines (switch in the
// middle, two branches), WAL ranges per timeline and gaps at the start, middle and end.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { planRecovery, type PlanBackup, type PlanInput } from '../../../packages/barmants/src/recovery/plan.js';
import type { RecoveryTarget } from '../../../packages/barmants/src/recovery/target.js';
import { BarmantsError } from '../../../packages/barmants/src/errors/index.js';

const MB16 = 16 * 1024 * 1024;
const MB1 = 1024 * 1024;
const name = (tli: number, segno: bigint, seg = MB16): string => {
  const per = 0x100000000n / BigInt(seg);
  const h = (n: bigint): string => n.toString(16).toUpperCase().padStart(8, '0');
  return h(BigInt(tli)) + h(segno / per) + h(segno % per);
};

function backup(id: string, beginSeg: bigint, endSeg: bigint, extra: Partial<PlanBackup> = {}): PlanBackup {
  const seg = extra.walSegmentSize ?? MB16;
  const tli = extra.timeline ?? 1;
  return {
    backupId: id,
    name: null,
    status: 'DONE',
    beginTime: `2026-11-${id.slice(6, 8)} 01:00:00+00:00`,
    endTime: `2026-11-${id.slice(6, 8)} 01:10:00.500000+00:00`,
    beginLsn: beginSeg * BigInt(seg) + 40n,
    endLsn: endSeg * BigInt(seg) + 0x100n,
    beginWal: name(tli, beginSeg, seg),
    endWal: name(tli, endSeg, seg),
    timeline: tli,
    walSegmentSize: seg,
    pgVersion: 160004,
    ...extra,
  };
}

const B1 = backup('20261101T010000', 2n, 3n);
const B2 = backup('20261110T010000', 10n, 11n);
const time = (t: string): RecoveryTarget => ({ kind: 'time', time: new Date(t), inclusive: true, text: t });
const lsn = (n: bigint): RecoveryTarget => ({ kind: 'lsn', lsn: n, inclusive: true });

function input(over: Partial<PlanInput> = {}): PlanInput {
  return {
    backups: [B1, B2],
    backupRef: null,
    target: { kind: 'end' },
    targetTli: null,
    histories: new Map(),
    walRanges: () => [],
    lastWal: { tli: 1, segno: 20n, partial: false },
    ...over,
  };
}
const err = (kind: string, re: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof BarmantsError, String(e));
  assert.equal(e.kind, kind);
  assert.match(`${e.message} | ${e.hint}`, re);
  return true;
};

describe('backup choice', () => {
  test('time target: newest DONE backup that ended before it', () => {
    const p = planRecovery(input({ target: time('2026-11-05T00:00:00Z') }));
    assert.equal(p.backup.backupId, B1.backupId);
    assert.equal(p.chosenAutomatically, true);
    assert.match(p.notes.join('\n'), /ended before the target time/);
    assert.equal(planRecovery(input({ target: time('2026-11-20T00:00:00Z') })).backup.backupId, B2.backupId);
  });
  test('lsn target: newest DONE backup whose end LSN is before it', () => {
    assert.equal(planRecovery(input({ target: lsn(5n * BigInt(MB16)) })).backup.backupId, B1.backupId);
    assert.equal(planRecovery(input({ target: lsn(15n * BigInt(MB16)) })).backup.backupId, B2.backupId);
  });
  test('other targets: newest DONE, FAILED ones skipped', () => {
    const failed = backup('20261115T010000', 14n, 15n, { status: 'FAILED' });
    const p = planRecovery(input({ backups: [B1, B2, failed], target: { kind: 'name', name: 'before_upgrade' } }));
    assert.equal(p.backup.backupId, B2.backupId);
    assert.match(p.notes.join('\n'), /newest DONE backup/);
    assert.match(p.notes.join('\n'), /restore point "before_upgrade" is not checked/);
  });
  test('no backup before the target time / LSN, or none at all', () => {
    assert.throws(() => planRecovery(input({ target: time('2026-10-01T00:00:00Z') })), err('usage', /earliest reachable point is 2026-11-01 01:10:00.5/));
    assert.throws(() => planRecovery(input({ target: lsn(1n) })), err('usage', /earliest reachable point is 0\/3000100/));
    assert.throws(() => planRecovery(input({ backups: [] })), err('notFound', /no DONE backup/));
  });
  test('explicit backup: must exist and be DONE', () => {
    assert.equal(planRecovery(input({ backupRef: B1.backupId })).chosenAutomatically, false);
    assert.throws(() => planRecovery(input({ backupRef: 'nope' })), err('notFound', /nope does not exist/));
    const w = backup('20261112T010000', 12n, 13n, { status: 'WAITING_FOR_WALS' });
    assert.throws(() => planRecovery(input({ backups: [w], backupRef: w.backupId })), err('unsafe', /WAITING_FOR_WALS, not DONE/));
  });
  test('target before the chosen backup end names the earliest reachable point', () => {
    assert.throws(
      () => planRecovery(input({ backupRef: B2.backupId, target: time('2026-11-10T01:10:00.4Z') })),
      err('usage', /before the end of backup 20261110T010000 .*earliest reachable point with this backup is 2026-11-10 01:10:00.500000/),
    );
    // Microseconds count: 01:10:00.500000 is reachable, 01:10:00.499999 is not.
    const t: RecoveryTarget = { kind: 'time', time: new Date('2026-11-10T01:10:00.499Z'), micros: 999, inclusive: true, text: '' };
    assert.throws(() => planRecovery(input({ backupRef: B2.backupId, target: t })), err('usage', /before the end/));
    assert.equal(planRecovery(input({ backupRef: B2.backupId, target: time('2026-11-10T01:10:00.5Z') })).backup, B2);
    assert.throws(() => planRecovery(input({ backupRef: B2.backupId, target: lsn(B2.endLsn - 1n) })), err('usage', /earliest reachable point with this backup is 0\/B000100/));
  });
});

describe('WAL ranges on one timeline', () => {
  test('end target: from begin_wal through the archive end, 16 MB', () => {
    const p = planRecovery(input({ backupRef: B1.backupId }));
    assert.deepEqual(p.walSegments, [{ tli: 1, fromSegno: 2n, toSegno: 20n }]);
    assert.equal(p.targetTli, 1);
    assert.equal(p.includePartial, false);
    assert.equal(p.earliestReachable, '2026-11-01 01:10:00.500000+00:00 (LSN 0/3000100)');
  });
  test('the .partial being received is included', () => {
    const asked: bigint[][] = [];
    const p = planRecovery(input({ backupRef: B1.backupId, lastWal: { tli: 1, segno: 20n, partial: true }, walRanges: (_t, f, t) => (asked.push([f, t]), []) }));
    assert.equal(p.includePartial, true);
    assert.deepEqual(asked, [[2n, 19n]]);
  });
  test('lsn target: only up to the segment holding it', () => {
    const p = planRecovery(input({ backupRef: B1.backupId, target: lsn(7n * BigInt(MB16) + 5n) }));
    assert.deepEqual(p.walSegments, [{ tli: 1, fromSegno: 2n, toSegno: 7n }]);
  });
  test('immediate: only the backup segments', () => {
    const p = planRecovery(input({ backupRef: B1.backupId, target: { kind: 'immediate' } }));
    assert.deepEqual(p.walSegments, [{ tli: 1, fromSegno: 2n, toSegno: 3n }]);
  });
  test('1 MB segments cross log ids (4096 segments per log)', () => {
    const b = backup('20261101T010000', 4090n, 4091n, { walSegmentSize: MB1 });
    assert.equal(b.beginWal, '000000010000000000000FFA');
    const p = planRecovery(input({ backups: [b], backupRef: b.backupId, lastWal: { tli: 1, segno: 4100n, partial: false } }));
    assert.deepEqual(p.walSegments, [{ tli: 1, fromSegno: 4090n, toSegno: 4100n }]);
  });
  test('empty archive is a gap', () => {
    assert.throws(() => planRecovery(input({ lastWal: null })), err('gap', /archive is empty/));
  });
});

describe('timelines', () => {
  // Timeline 2 forked from 1 at 0/8800000 (segment 8), after both B1 (ends seg 3) and before B2 (seg 11).
  const h2 = [{ tli: 1, switchLsn: 0x8800000n, reason: 'no recovery target specified' }];
  // Timeline 3 forked from 1 at 0/C000000 (after B2); timeline 4 forked from 2 at 0/F000000.
  const h3 = [{ tli: 1, switchLsn: 0xc000000n, reason: 'pitr' }];
  const h4 = [...h2, { tli: 2, switchLsn: 0xf000000n, reason: 'promote' }];

  test('switch in the middle: old timeline before the switch segment, new one from it', () => {
    const p = planRecovery(input({ backupRef: B1.backupId, histories: new Map([[2, h2]]), lastWal: { tli: 2, segno: 12n, partial: false } }));
    assert.equal(p.targetTli, 2);
    assert.deepEqual(p.walSegments, [
      { tli: 1, fromSegno: 2n, toSegno: 7n },
      { tli: 2, fromSegno: 8n, toSegno: 12n },
    ]);
  });
  test('lsn target across the switch', () => {
    const p = planRecovery(input({ backupRef: B1.backupId, histories: new Map([[2, h2]]), target: lsn(0x9000010n), lastWal: { tli: 2, segno: 12n, partial: true } }));
    assert.deepEqual(p.walSegments, [{ tli: 1, fromSegno: 2n, toSegno: 7n }, { tli: 2, fromSegno: 8n, toSegno: 9n }]);
    assert.equal(p.includePartial, false);
  });
  test('current: stays on the backup timeline, ending before the switch segment', () => {
    const p = planRecovery(input({ backupRef: B1.backupId, targetTli: { kind: 'current' }, histories: new Map([[2, h2]]), lastWal: { tli: 2, segno: 12n, partial: false } }));
    assert.equal(p.targetTli, 1);
    assert.deepEqual(p.walSegments, [{ tli: 1, fromSegno: 2n, toSegno: 7n }]);
  });
  test('latest with two branches: the highest timeline descending from the backup', () => {
    const histories = new Map([[2, h2], [3, h3], [4, h4]]);
    const ends = new Map([[3, { segno: 14n, partial: false }], [4, { segno: 16n, partial: false }]]);
    // B1 ends before every fork: latest is 4 (through 2).
    const p1 = planRecovery(input({ backupRef: B1.backupId, histories, timelineEnds: ends, lastWal: { tli: 4, segno: 16n, partial: false } }));
    assert.equal(p1.targetTli, 4);
    assert.deepEqual(p1.walSegments, [{ tli: 1, fromSegno: 2n, toSegno: 7n }, { tli: 2, fromSegno: 8n, toSegno: 14n }, { tli: 4, fromSegno: 15n, toSegno: 16n }]);
    // B2 ends after the fork of 2 (hence 4): latest is 3, with a note.
    const p2 = planRecovery(input({ backupRef: B2.backupId, histories, timelineEnds: ends, lastWal: { tli: 4, segno: 16n, partial: false } }));
    assert.equal(p2.targetTli, 3);
    assert.deepEqual(p2.walSegments, [{ tli: 1, fromSegno: 10n, toSegno: 11n }, { tli: 3, fromSegno: 12n, toSegno: 14n }]);
    assert.match(p2.notes.join('\n'), /timeline 4 is newer but .*forked .* before the end of the backup.*recovery_target_timeline must be 3/);
  });
  test('default timeline: latest from PostgreSQL 12, current before', () => {
    const histories = new Map([[2, h2]]);
    const last = { tli: 2, segno: 12n, partial: false };
    assert.equal(planRecovery(input({ backupRef: B1.backupId, histories, lastWal: last })).targetTli, 2);
    const old = { ...B1, pgVersion: 110005 };
    const p = planRecovery(input({ backups: [old], backupRef: old.backupId, histories, lastWal: last }));
    assert.equal(p.targetTli, 1);
    assert.match(p.notes.join('\n'), /following the current timeline, as PostgreSQL 11 does by default/);
  });
  test('a requested timeline that does not contain the backup is refused', () => {
    const histories = new Map([[2, h2], [3, h3]]);
    assert.throws(() => planRecovery(input({ backupRef: B2.backupId, targetTli: { kind: 'number', tli: 2 }, histories })), err('usage', /cannot reach timeline 2: timeline 2 forked from timeline 1 at 0\/8800000, before the end of the backup/));
    const b3 = backup('20261120T010000', 13n, 13n, { timeline: 3 });
    assert.throws(() => planRecovery(input({ backups: [b3], backupRef: b3.backupId, targetTli: { kind: 'number', tli: 2 }, histories })), err('usage', /does not descend from timeline 3/));
    assert.throws(() => planRecovery(input({ backupRef: B1.backupId, targetTli: { kind: 'number', tli: 9 }, histories })), err('notFound', /timeline 9 has no history file/));
  });
  test('requested ancestor timeline that ended: its last complete segment ends the recovery', () => {
    const p = planRecovery(input({ backupRef: B1.backupId, targetTli: { kind: 'number', tli: 1 }, histories: new Map([[2, h2]]), lastWal: { tli: 2, segno: 12n, partial: false } }));
    assert.deepEqual(p.walSegments, [{ tli: 1, fromSegno: 2n, toSegno: 7n }]);
  });
  test('a branch that is not the archive end and has no known end is refused', () => {
    const histories = new Map([[2, h2], [3, h3]]);
    assert.throws(() => planRecovery(input({ backupRef: B2.backupId, targetTli: { kind: 'number', tli: 3 }, histories, lastWal: { tli: 2, segno: 12n, partial: false } })), err('notFound', /cannot tell where timeline 3 ends/));
  });
});

describe('gaps', () => {
  const gapAt = (tli: number, from: bigint, to: bigint) => (t: number, f: bigint, e: bigint) => (t === tli && f <= to && e >= from ? [{ from, to }] : []);
  test('gap in the middle: strict error naming segments and the latest reachable LSN', () => {
    assert.throws(
      () => planRecovery(input({ backupRef: B1.backupId, walRanges: gapAt(1, 7n, 9n) })),
      err('gap', /WAL is missing for this recovery: 000000010000000000000007\.\.000000010000000000000009 \(3 segments\) on timeline 1 \| the archive has a gap; the latest point you can reach is 0\/7000000/),
    );
  });
  test('gap at the start: the backup itself cannot become consistent', () => {
    assert.throws(() => planRecovery(input({ backupRef: B1.backupId, walRanges: gapAt(1, 2n, 2n) })), err('gap', /\(1 segment\).*gap inside backup 20261101T010000/));
  });
  test('gap at the end of the archive, and on the new timeline after a switch', () => {
    assert.throws(() => planRecovery(input({ backupRef: B1.backupId, walRanges: gapAt(1, 20n, 20n) })), err('gap', /000000010000000000000014\.\.000000010000000000000014/));
    const h2 = [{ tli: 1, switchLsn: 0x8800000n, reason: '' }];
    assert.throws(
      () => planRecovery(input({ backupRef: B1.backupId, histories: new Map([[2, h2]]), lastWal: { tli: 2, segno: 12n, partial: false }, walRanges: gapAt(2, 8n, 8n) })),
      err('gap', /000000020000000000000008.*on timeline 2.*0\/8000000/),
    );
  });
  test('lsn target: a gap after the target does not matter', () => {
    const p = planRecovery(input({ backupRef: B1.backupId, target: lsn(0x5000000n), walRanges: gapAt(1, 7n, 9n) }));
    assert.deepEqual(p.walSegments, [{ tli: 1, fromSegno: 2n, toSegno: 5n }]);
  });
  test('several gaps are counted', () => {
    const walRanges = () => [{ from: 5n, to: 5n }, { from: 9n, to: 10n }];
    assert.throws(() => planRecovery(input({ backupRef: B1.backupId, walRanges })), err('gap', /and 1 more gap/));
  });
  test('archive ending before the backup end is a gap', () => {
    assert.throws(() => planRecovery(input({ backupRef: B2.backupId, lastWal: { tli: 1, segno: 10n, partial: false } })), err('gap', /00000001000000000000000B/));
  });
});
