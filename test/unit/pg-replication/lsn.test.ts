/*
 * Unit tests for LSN parsing and printing: the text form must match PostgreSQL's `%X/%X` exactly,
 * since LSNs travel between us and the server as text.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidLsn, formatLsn, lsnDiff, maxLsn, parseLsn } from '../../../packages/pg-replication/src/lsn.js';

describe('parseLsn', () => {
  test('parses X/Y hex, any case', () => {
    assert.equal(parseLsn('0/16B3748'), 0x16b3748n);
    assert.equal(parseLsn('0/16b3748'), 0x16b3748n);
    assert.equal(parseLsn('1/0'), 0x100000000n);
    assert.equal(parseLsn('0/0'), 0n);
    assert.equal(parseLsn('00000000/00000001'), 1n);
    assert.equal(parseLsn('FFFFFFFF/FFFFFFFF'), 0xffffffffffffffffn);
    assert.equal(parseLsn('A/45312FC8'), 0xa45312fc8n);
  });

  test('keeps values above 2^53 exact', () => {
    assert.equal(parseLsn('FFFFFF/FFFFFFFF'), 0xffffffffffffffn);
    assert.equal(parseLsn('200000/1'), (0x200000n << 32n) | 1n);
  });

  for (const bad of ['', 'zz', '0', '/0', '0/', '0/16B3748 ', ' 0/1', '0/1/2', '123456789/0', '0/123456789', '-1/0', '0x1/0', '0/G', '1.5/0', '0//1']) {
    test(`rejects ${JSON.stringify(bad)} with a TypeError saying what was expected`, () => {
      assert.throws(() => parseLsn(bad), (err: unknown) => {
        assert.ok(err instanceof TypeError);
        assert.equal(
          err.message,
          `invalid LSN ${JSON.stringify(bad)}: expected two hexadecimal numbers separated by a slash, like 0/16B3748`,
        );
        return true;
      });
    });
  }
});

describe('formatLsn', () => {
  test('prints like PostgreSQL: uppercase, no leading zeros', () => {
    assert.equal(formatLsn(0x16b3748n), '0/16B3748');
    assert.equal(formatLsn(0x100000000n), '1/0');
    assert.equal(formatLsn(0n), '0/0');
    assert.equal(formatLsn(0xffffffffffffffffn), 'FFFFFFFF/FFFFFFFF');
    assert.equal(formatLsn(0xa00000010n), 'A/10');
  });

  test('round-trips through parseLsn', () => {
    for (const text of ['0/0', '0/1', '0/FFFFFFFF', '1/0', '12/ABCDEF01', 'FFFFFFFF/FFFFFFFF', '0/45312FC8']) {
      assert.equal(formatLsn(parseLsn(text)), text);
    }
    assert.equal(formatLsn(parseLsn('00000001/0000abcd')), '1/ABCD');
  });

  test('rejects values outside 64 bits', () => {
    assert.throws(() => formatLsn(-1n), RangeError);
    assert.throws(() => formatLsn(1n << 64n), RangeError);
  });
});

describe('lsnDiff, maxLsn, InvalidLsn', () => {
  test('InvalidLsn is 0', () => {
    assert.equal(InvalidLsn, 0n);
  });

  test('lsnDiff is a - b like pg_wal_lsn_diff, signed', () => {
    assert.equal(lsnDiff(parseLsn('1/0'), parseLsn('0/FFFFFFFF')), 1n);
    assert.equal(lsnDiff(parseLsn('0/1000'), parseLsn('0/2000')), -0x1000n);
    assert.equal(lsnDiff(5n, 5n), 0n);
  });

  test('maxLsn picks the furthest; InvalidLsn for none', () => {
    assert.equal(maxLsn(), InvalidLsn);
    assert.equal(maxLsn(3n), 3n);
    assert.equal(maxLsn(parseLsn('0/FFFFFFFF'), parseLsn('1/0'), parseLsn('0/1')), 0x100000000n);
  });
});
