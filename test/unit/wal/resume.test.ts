/*
 * The receiver's pure decisions: where to resume after a failover or PITR, where after WAL the
 * server removed, whether it is a synchronous standby, and the reconnect backoff.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLsn } from '../../../packages/pg-replication/src/index.js';
import {
  ancestryFromCatalog, backoffDelay, divergencePoint, firstSegmentStillOnServer, isSynchronousStandby, parseSynchronousStandbyNames,
} from '../../../packages/barmants/src/wal/resume.js';
import type { HistoryFileRecord } from '../../../packages/barmants/src/catalog/index.js';

const L = parseLsn;
const h = (tli: number, sw: string) => ({ tli, switchLsn: L(sw), reason: '' });

describe('divergencePoint', () => {
  test('same line: resume where we are', () => {
    assert.deepEqual(divergencePoint({ tli: 1, history: [] }, { tli: 1, history: [] }, L('0/5000000')), { lsn: L('0/5000000'), tli: 1 });
  });
  test('server promoted after our position: stay on our timeline', () => {
    const d = divergencePoint({ tli: 1, history: [] }, { tli: 2, history: [h(1, '0/9000100')] }, L('0/5000000'));
    assert.deepEqual(d, { lsn: L('0/5000000'), tli: 1 });
  });
  test('failover: we streamed the old primary past the new timeline\'s switch point', () => {
    const d = divergencePoint({ tli: 1, history: [] }, { tli: 2, history: [h(1, '0/4312FC8')] }, L('0/5000000'));
    assert.deepEqual(d, { lsn: L('0/4312FC8'), tli: 2 });
  });
  test('PITR branch: our timeline 2 is unknown to a server on timeline 3 forked from 1', () => {
    const ours = { tli: 2, history: [h(1, '0/6000000')] };
    const server = { tli: 3, history: [h(1, '0/4000100')] };
    assert.deepEqual(divergencePoint(ours, server, L('0/8000000')), { lsn: L('0/4000100'), tli: 3 });
  });
  test('common ancestry, later fork', () => {
    const ours = { tli: 3, history: [h(1, '0/2000000'), h(2, '0/7000000')] };
    const server = { tli: 4, history: [h(1, '0/2000000'), h(2, '0/5000000')] };
    assert.deepEqual(divergencePoint(ours, server, L('0/9000000')), { lsn: L('0/5000000'), tli: 4 });
  });
});

describe('firstSegmentStillOnServer', () => {
  const MB16 = 16 << 20;
  const base = { segSize: MB16, serverTli: 1, serverHistory: [] };
  test('the oldest segment after ours, ignoring older ones, recycled future names, history and partial files', () => {
    const walFiles = [
      '000000010000000000000003', // older than what we have: not a resume point
      '00000001000000000000000A',
      '000000010000000000000009',
      '00000001000000000000000B',
      '000000010000000000000010', // recycled, beyond the segment being written
      '00000002.history',
      '000000010000000000000008.partial',
      'archive_status',
    ];
    assert.deepEqual(firstSegmentStillOnServer({ ...base, walFiles, fromSegno: 5n, currentLsn: L('0/B001234') }), { segno: 9n, tli: 1 });
  });
  test('none left after ours: null (the caller falls back)', () => {
    assert.equal(firstSegmentStillOnServer({ ...base, walFiles: ['000000010000000000000003'], fromSegno: 5n, currentLsn: L('0/B000000') }), null);
    assert.equal(firstSegmentStillOnServer({ ...base, walFiles: [], fromSegno: 5n, currentLsn: L('0/B000000') }), null);
  });
  test('only the timeline the server streams there: the switch segment comes from the newer file', () => {
    const serverHistory = [h(1, '0/9800000')];
    const walFiles = [
      '000000010000000000000008', // timeline 1 before the switch: ok
      '000000010000000000000009', // old timeline's copy of the switch segment
      '000000020000000000000009', // the switch segment on timeline 2
      '00000002000000000000000A',
    ];
    const o = { segSize: MB16, serverTli: 2, serverHistory, walFiles, currentLsn: L('0/A100000') };
    assert.deepEqual(firstSegmentStillOnServer({ ...o, fromSegno: 5n }), { segno: 8n, tli: 1 });
    assert.deepEqual(firstSegmentStillOnServer({ ...o, fromSegno: 8n }), { segno: 9n, tli: 1 });
    assert.deepEqual(firstSegmentStillOnServer({ ...o, fromSegno: 9n }), { segno: 10n, tli: 2 });
    // A timeline-1 file past the switch (the old primary's, copied in by hand) is not ours to stream.
    assert.deepEqual(firstSegmentStillOnServer({ ...o, walFiles: ['00000001000000000000000A', '00000002000000000000000A'], fromSegno: 9n }), { segno: 10n, tli: 2 });
    assert.equal(firstSegmentStillOnServer({ ...o, walFiles: ['00000001000000000000000A'], fromSegno: 9n }), null);
  });
  test('1 MB segments: names are read with the segment size', () => {
    const walFiles = ['000000010000000100000002', '0000000100000001000000FF'];
    const r = firstSegmentStillOnServer({ segSize: 1 << 20, serverTli: 1, serverHistory: [], walFiles, fromSegno: 0x100n, currentLsn: L('1/2000000') });
    assert.deepEqual(r, { segno: 0x1000n + 2n, tli: 1 });
  });
});

describe('ancestryFromCatalog', () => {
  const row = (tli: number, parentTli: number, sw: string): HistoryFileRecord => ({
    server: 's', tli, name: '', parentTli, switchLsn: L(sw), checksum: '', archivedAt: '',
  });
  test('chains parents oldest first', () => {
    const rows = [row(2, 1, '0/3000000'), row(3, 2, '0/5000000')];
    assert.deepEqual(ancestryFromCatalog(rows, 3), [h(1, '0/3000000'), h(2, '0/5000000')]);
    assert.deepEqual(ancestryFromCatalog(rows, 1), []);
  });
});

describe('synchronous_standby_names', () => {
  test('parses the three syntaxes', () => {
    assert.deepEqual(parseSynchronousStandbyNames('a, b'), ['a', 'b']);
    assert.deepEqual(parseSynchronousStandbyNames('FIRST 2 (a, "B c")'), ['a', 'B c']);
    assert.deepEqual(parseSynchronousStandbyNames('ANY 1 (*)'), ['*']);
    assert.deepEqual(parseSynchronousStandbyNames('2 (x,y)'), ['x', 'y']);
    assert.deepEqual(parseSynchronousStandbyNames(''), []);
    assert.deepEqual(parseSynchronousStandbyNames(null), []);
  });
  test('matches case-insensitively and on *', () => {
    assert.equal(isSynchronousStandby('Barmants_Receive_Wal', 'barmants_receive_wal'), true);
    assert.equal(isSynchronousStandby('FIRST 1 (standby1, barmants_receive_wal)', 'barmants_receive_wal'), true);
    assert.equal(isSynchronousStandby('*', 'barmants_receive_wal'), true);
    assert.equal(isSynchronousStandby('standby1', 'barmants_receive_wal'), false);
  });
});

describe('backoffDelay', () => {
  test('grows exponentially, capped, with 50-100 % jitter', () => {
    assert.equal(backoffDelay(0, 500, 30_000, () => 1), 500);
    assert.equal(backoffDelay(0, 500, 30_000, () => 0), 250);
    assert.equal(backoffDelay(3, 500, 30_000, () => 1), 4000);
    assert.equal(backoffDelay(20, 500, 30_000, () => 1), 30_000);
    assert.equal(backoffDelay(1000, 500, 30_000, () => 0), 15_000);
  });
});
