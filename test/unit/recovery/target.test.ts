// Recovery target parsing: time forms and zones (DST included), xid, LSN, and the text PostgreSQL gets.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseTargetTime,
  parseTargetTimeDetailed,
  formatTargetTimeForPostgres,
  parseTargetXid,
  parseTargetLsn,
} from '../../../packages/barmants/src/recovery/target.js';
import { BarmantsError } from '../../../packages/barmants/src/errors/index.js';

const iso = (t: string, z = 'UTC'): string => parseTargetTime(t, z).toISOString();
const usage = (e: unknown): boolean => e instanceof BarmantsError && e.kind === 'usage';

describe('parseTargetTime', () => {
  test('ISO-8601 forms', () => {
    assert.equal(iso('2026-11-27T10:00:00Z', 'Europe/Paris'), '2026-11-27T10:00:00.000Z');
    assert.equal(iso('2026-11-27T10:00:00+02:00'), '2026-11-27T08:00:00.000Z');
    assert.equal(iso('2026-11-27T10:00:00.5-0130'), '2026-11-27T11:30:00.500Z');
    assert.equal(iso('2026-11-27T10:00:00,25Z'), '2026-11-27T10:00:00.250Z');
  });
  test('PostgreSQL forms', () => {
    assert.equal(iso('2026-11-27 10:15:00+01'), '2026-11-27T09:15:00.000Z');
    assert.equal(iso('2026-11-27 10:15:00.123456+01'), '2026-11-27T09:15:00.123Z');
    assert.equal(iso('2026-11-27 10:15:00 UTC', 'Europe/Paris'), '2026-11-27T10:15:00.000Z');
    assert.equal(iso('2026-11-27 10:15:00 Europe/Paris'), '2026-11-27T09:15:00.000Z');
    assert.equal(iso('2026-11-27 10:15'), '2026-11-27T10:15:00.000Z');
    assert.equal(iso('2026-11-27'), '2026-11-27T00:00:00.000Z');
  });
  test('without zone: defaultTimeZone (offset, UTC, IANA with DST)', () => {
    assert.equal(iso('2026-11-27 10:00:00', '+02:00'), '2026-11-27T08:00:00.000Z');
    assert.equal(iso('2026-11-27 10:00:00', 'UTC'), '2026-11-27T10:00:00.000Z');
    assert.equal(iso('2026-11-27 10:00:00', 'Europe/Paris'), '2026-11-27T09:00:00.000Z');
    assert.equal(iso('2026-07-27 10:00:00', 'Europe/Paris'), '2026-07-27T08:00:00.000Z');
    assert.equal(iso('2026-07-01 12:00:00', 'America/New_York'), '2026-07-01T16:00:00.000Z');
    const d = parseTargetTimeDetailed('2026-11-27 10:00:00', 'UTC');
    assert.equal(d.zoneGiven, false);
    assert.equal(parseTargetTimeDetailed('2026-11-27 10:00:00Z', 'UTC').zoneGiven, true);
  });
  test('nonexistent local time (spring forward) uses the offset before the jump, like PostgreSQL', () => {
    // Europe/Paris skips 02:00–03:00 on 2026-03-29: 02:30 is read as 02:30+01 = 03:30+02.
    assert.equal(iso('2026-03-29 02:30:00', 'Europe/Paris'), '2026-03-29T01:30:00.000Z');
  });
  test('ambiguous local time (fall back) takes the later instant, like PostgreSQL', () => {
    assert.equal(iso('2026-10-25 02:30:00', 'Europe/Paris'), '2026-10-25T01:30:00.000Z');
  });
  test('microseconds survive the Date', () => {
    const d = parseTargetTimeDetailed('2026-11-27 10:15:00.123456+01', 'UTC');
    assert.equal(d.micros, 456);
    assert.equal(formatTargetTimeForPostgres(d.time, d.micros), '2026-11-27 09:15:00.123456+00');
  });
  test('bad text is a usage error with the expected forms', () => {
    for (const bad of ['xyz', '2026-13-01 00:00:00', '2026-02-30 10:00:00', '2026-11-27 24:00:00', '2026-11-27 10:00:61', '2026-11-27 10:00:00 Mars/Olympus', '27/11/2026', '2026-11-27 10:00:00.1234567']) {
      assert.throws(() => parseTargetTime(bad, 'UTC'), usage, bad);
    }
    assert.throws(() => parseTargetTime('xyz', 'UTC'), {
      message: `invalid target time "xyz": expected ISO-8601 or 'YYYY-MM-DD HH:MM:SS[.ffffff][±TZ]', e.g. '2026-11-27 10:15:00+01'`,
    });
    assert.throws(() => parseTargetTime('2026-11-27 10:00:00', 'Nowhere/Land'), usage);
  });
});

describe('formatTargetTimeForPostgres', () => {
  test('UTC, fraction only when present', () => {
    assert.equal(formatTargetTimeForPostgres(new Date('2026-11-27T09:15:00Z')), '2026-11-27 09:15:00+00');
    assert.equal(formatTargetTimeForPostgres(new Date('2026-11-27T09:15:00.120Z')), '2026-11-27 09:15:00.120000+00');
  });
});

describe('parseTargetXid / parseTargetLsn', () => {
  test('xid: plain digits, 3 to 2^64-1, normalised', () => {
    assert.equal(parseTargetXid('734'), '734');
    assert.equal(parseTargetXid('00734'), '734');
    assert.equal(parseTargetXid('18446744073709551615'), '18446744073709551615');
    for (const bad of ['', '0', '2', '-5', '12a', '1.5', '18446744073709551616', '0x10']) assert.throws(() => parseTargetXid(bad), usage, bad);
  });
  test('lsn: X/Y hexadecimal', () => {
    assert.equal(parseTargetLsn('0/16B3748'), 0x16b3748n);
    assert.equal(parseTargetLsn('1/0'), 1n << 32n);
    for (const bad of ['', '16B3748', '0/G', '0/123456789']) assert.throws(() => parseTargetLsn(bad), usage, bad);
  });
});
