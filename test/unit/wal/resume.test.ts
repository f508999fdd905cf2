/*
 * The receiver's pure decisions: where to resume after a failover or PITR, whether it is a
 * synchronous standby, and the reconnect backoff.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLsn } from '../../../packages/pg-replication/src/index.js';
import {
  ancestryFromCatalog, backoffDelay, divergencePoint, isSynchronousStandby, parseSynchronousStandbyNames,
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
