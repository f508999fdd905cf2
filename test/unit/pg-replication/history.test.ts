/*
 * Unit tests for timeline history files and the segment ranges recovery reads along a history:
 * switch points at and inside segments, several switches in one segment, other segment sizes.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLsn } from '../../../packages/pg-replication/src/lsn.js';
import {
  formatTimelineHistory,
  parseTimelineHistory,
  timelineForLsn,
  timelineSegments,
  type TimelineHistoryEntry,
} from '../../../packages/pg-replication/src/history.js';

const MB = 1024 * 1024;

describe('parseTimelineHistory', () => {
  test('parses what the server sent after a promotion (PROTOCOL.md §4)', () => {
    assert.deepEqual(parseTimelineHistory('1\t0/45312FC8\tno recovery target specified\n'), [
      { tli: 1, switchLsn: 0x45312fc8n, reason: 'no recovery target specified' },
    ]);
  });

  test('skips the blank line PostgreSQL writes between inherited and new entries, and comments', () => {
    const content =
      '# written by hand\n' +
      '1\t0/3000158\tno recovery target specified\n' +
      '\n' +
      '2\t0/5000060\tat restore point "before_drop"\n' +
      '\n' +
      '   # indented comment\n' +
      '9\tA/1\tbefore 2024-03-01 10:00:00+00\n';
    assert.deepEqual(parseTimelineHistory(content), [
      { tli: 1, switchLsn: 0x3000158n, reason: 'no recovery target specified' },
      { tli: 2, switchLsn: 0x5000060n, reason: 'at restore point "before_drop"' },
      { tli: 9, switchLsn: 0xa00000001n, reason: 'before 2024-03-01 10:00:00+00' },
    ]);
  });

  test('accepts a missing trailing newline, CRLF, spaces, an empty reason and lowercase hex', () => {
    assert.deepEqual(parseTimelineHistory('1\t0/3000158\treason\r\n2 0/5000060\n10\t1/abc\t'), [
      { tli: 1, switchLsn: 0x3000158n, reason: 'reason' },
      { tli: 2, switchLsn: 0x5000060n, reason: '' },
      { tli: 10, switchLsn: 0x100000abcn, reason: '' },
    ]);
  });

  test('an empty file is an empty history', () => {
    assert.deepEqual(parseTimelineHistory(''), []);
    assert.deepEqual(parseTimelineHistory('\n\n# nothing\n'), []);
  });

  const malformed: [string, string, RegExp][] = [
    ['no switch point', '1\tno recovery target specified\n', /line 1 .*expected a timeline ID, a switch point/],
    ['non-numeric timeline', 'x\t0/1\treason\n', /line 1 /],
    ['bad LSN', '1\t0/3000158\tok\n2\t0/ZZ\treason\n', /line 2 /],
    ['LSN part too long', '1\t0/123456789\treason\n', /line 1 /],
    ['garbage after LSN', '1\t0/3000158x\treason\n', /line 1 /],
    ['timeline 0', '0\t0/1\treason\n', /line 1: timeline 0 is out of range/],
    ['timeline above 32 bits', '4294967296\t0/1\treason\n', /out of range/],
    ['timelines not increasing', '1\t0/1\ta\n\n1\t0/2\tb\n', /line 3: timeline 1 does not follow timeline 1/],
    ['timelines decreasing', '2\t0/1\ta\n1\t0/2\tb\n', /line 2: timeline 1 does not follow timeline 2/],
    ['switch points going back', '1\t0/5000000\ta\n2\t0/4000000\tb\n', /line 2: switch point 0\/4000000 is before the previous one \(0\/5000000\)/],
  ];
  for (const [what, content, message] of malformed) {
    test(`rejects ${what}, naming the line`, () => {
      assert.throws(() => parseTimelineHistory(content), (err: unknown) => {
        assert.ok(err instanceof TypeError);
        assert.match(err.message, message);
        return true;
      });
    });
  }
});

describe('formatTimelineHistory', () => {
  test('writes lines like the server and round-trips', () => {
    const entries: TimelineHistoryEntry[] = [
      { tli: 1, switchLsn: 0x45312fc8n, reason: 'no recovery target specified' },
      { tli: 10, switchLsn: 0x100000000n, reason: 'at restore point "x"' },
    ];
    const text = formatTimelineHistory(entries);
    assert.equal(text, '1\t0/45312FC8\tno recovery target specified\n10\t1/0\tat restore point "x"\n');
    assert.deepEqual(parseTimelineHistory(text), entries);
    assert.equal(formatTimelineHistory([]), '');
  });
});

const threeTimelines: TimelineHistoryEntry[] = [
  { tli: 1, switchLsn: parseLsn('0/45312FC8'), reason: 'no recovery target specified' },
  { tli: 2, switchLsn: parseLsn('0/60000000'), reason: 'no recovery target specified' },
];

describe('timelineForLsn', () => {
  test('a switch point belongs to the child timeline', () => {
    assert.equal(timelineForLsn(threeTimelines, 3, 0n), 1);
    assert.equal(timelineForLsn(threeTimelines, 3, parseLsn('0/45312FC7')), 1);
    assert.equal(timelineForLsn(threeTimelines, 3, parseLsn('0/45312FC8')), 2);
    assert.equal(timelineForLsn(threeTimelines, 3, parseLsn('0/5FFFFFFF')), 2);
    assert.equal(timelineForLsn(threeTimelines, 3, parseLsn('0/60000000')), 3);
    assert.equal(timelineForLsn(threeTimelines, 3, parseLsn('FF/0')), 3);
  });

  test('no history: everything is on the target timeline', () => {
    assert.equal(timelineForLsn([], 1, parseLsn('5/0')), 1);
  });

  test('rejects a target that is not after the history', () => {
    assert.throws(() => timelineForLsn(threeTimelines, 2, 0n), RangeError);
  });
});

describe('timelineSegments', () => {
  test('the switch segment is read from the new timeline', () => {
    const history = [threeTimelines[0]!];
    assert.deepEqual(timelineSegments(history, 2, parseLsn('0/40000028'), parseLsn('0/47000100'), 16 * MB), [
      { tli: 1, fromSegno: 0x40n, toSegno: 0x44n },
      { tli: 2, fromSegno: 0x45n, toSegno: 0x47n },
    ]);
  });

  test('a switch exactly at a segment start', () => {
    const history = [{ tli: 1, switchLsn: parseLsn('0/45000000'), reason: '' }];
    assert.deepEqual(timelineSegments(history, 2, parseLsn('0/40000028'), parseLsn('0/46000000'), 16 * MB), [
      { tli: 1, fromSegno: 0x40n, toSegno: 0x44n },
      { tli: 2, fromSegno: 0x45n, toSegno: 0x46n },
    ]);
  });

  test('a target inside the switch segment but before the switch still reads that segment from the child', () => {
    assert.deepEqual(timelineSegments([threeTimelines[0]!], 2, parseLsn('0/40000028'), parseLsn('0/45000000'), 16 * MB), [
      { tli: 1, fromSegno: 0x40n, toSegno: 0x44n },
      { tli: 2, fromSegno: 0x45n, toSegno: 0x45n },
    ]);
  });

  test('a range ending before the switch segment stays on the parent', () => {
    assert.deepEqual(timelineSegments(threeTimelines, 3, parseLsn('0/40000028'), parseLsn('0/44FFFFFF'), 16 * MB), [
      { tli: 1, fromSegno: 0x40n, toSegno: 0x44n },
    ]);
  });

  test('a range starting after the last switch only reads the target timeline', () => {
    assert.deepEqual(timelineSegments(threeTimelines, 3, parseLsn('0/61000000'), parseLsn('1/2'), 16 * MB), [
      { tli: 3, fromSegno: 0x61n, toSegno: 0x100n },
    ]);
  });

  test('three timelines, crossing a log id', () => {
    assert.deepEqual(timelineSegments(threeTimelines, 3, parseLsn('0/2000028'), parseLsn('1/3000000'), 16 * MB), [
      { tli: 1, fromSegno: 0x2n, toSegno: 0x44n },
      { tli: 2, fromSegno: 0x45n, toSegno: 0x5fn },
      { tli: 3, fromSegno: 0x60n, toSegno: 0x103n },
    ]);
  });

  test('a timeline that began and ended in one segment contributes nothing', () => {
    const history: TimelineHistoryEntry[] = [
      { tli: 1, switchLsn: parseLsn('0/45000100'), reason: '' },
      { tli: 2, switchLsn: parseLsn('0/45FFFF00'), reason: '' },
    ];
    assert.deepEqual(timelineSegments(history, 3, parseLsn('0/40000000'), parseLsn('0/46000000'), 16 * MB), [
      { tli: 1, fromSegno: 0x40n, toSegno: 0x44n },
      { tli: 3, fromSegno: 0x45n, toSegno: 0x46n },
    ]);
  });

  test('skipped timeline numbers (history of 5 = 1, 4)', () => {
    const history: TimelineHistoryEntry[] = [
      { tli: 1, switchLsn: parseLsn('0/3000000'), reason: '' },
      { tli: 4, switchLsn: parseLsn('0/5800000'), reason: '' },
    ];
    assert.deepEqual(timelineSegments(history, 5, 0n, parseLsn('0/6000000'), 16 * MB), [
      { tli: 1, fromSegno: 0n, toSegno: 2n },
      { tli: 4, fromSegno: 3n, toSegno: 4n },
      { tli: 5, fromSegno: 5n, toSegno: 6n },
    ]);
  });

  test('1MB segments', () => {
    assert.deepEqual(timelineSegments([threeTimelines[0]!], 2, parseLsn('0/45000000'), parseLsn('0/45400000'), MB), [
      { tli: 1, fromSegno: 0x450n, toSegno: 0x452n },
      { tli: 2, fromSegno: 0x453n, toSegno: 0x454n },
    ]);
  });

  test('1GB segments: both switches in segment 1, which is read from the target', () => {
    assert.deepEqual(timelineSegments(threeTimelines, 3, parseLsn('0/2000000'), parseLsn('0/70000000'), 1024 * MB), [
      { tli: 1, fromSegno: 0n, toSegno: 0n },
      { tli: 3, fromSegno: 1n, toSegno: 1n },
    ]);
  });

  test('no history: one range on the target timeline', () => {
    assert.deepEqual(timelineSegments([], 1, parseLsn('0/1000000'), parseLsn('0/1000000'), 16 * MB), [
      { tli: 1, fromSegno: 1n, toSegno: 1n },
    ]);
  });

  test('rejects a reversed range and a target not after the history', () => {
    assert.throws(() => timelineSegments([], 1, 2n, 1n, 16 * MB), /start 0\/2 is after end 0\/1/);
    assert.throws(() => timelineSegments(threeTimelines, 1, 0n, 1n, 16 * MB), RangeError);
  });
});
