/*
 * Unit tests for WAL segment arithmetic and names across segment sizes (1 MB to 1 GB), log id
 * boundaries, timelines above 9 and exact segment edges: the places a 16 MB assumption would hide.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLsn } from '../../../packages/pg-replication/src/lsn.js';
import {
  compareWalNames,
  historyFileName,
  isBackupHistoryName,
  isHistoryFileName,
  isPartialWalName,
  isWalSegmentName,
  nextSegmentName,
  parseWalFileName,
  parseWalSegmentSize,
  segmentOf,
  segmentOffset,
  segmentStart,
  segmentsPerXLogId,
  walFileName,
  walFileNameOfLsn,
  walHashDir,
} from '../../../packages/pg-replication/src/walfile.js';

const MB = 1024 * 1024;
const GB = 1024 * MB;

describe('parseWalSegmentSize', () => {
  test('reads SHOW wal_segment_size output with units', () => {
    assert.equal(parseWalSegmentSize('16MB'), 16 * MB);
    assert.equal(parseWalSegmentSize('1MB'), MB);
    assert.equal(parseWalSegmentSize('64MB'), 64 * MB);
    assert.equal(parseWalSegmentSize('1GB'), GB);
    assert.equal(parseWalSegmentSize('2048kB'), 2 * MB);
  });

  test('reads a bare byte count, and B', () => {
    assert.equal(parseWalSegmentSize('16777216'), 16 * MB);
    assert.equal(parseWalSegmentSize('1048576B'), MB);
  });

  for (const bad of ['', 'MB', '16 XB', '16.5MB', '-16MB', 'sixteen']) {
    test(`rejects unparsable ${JSON.stringify(bad)} with a TypeError`, () => {
      assert.throws(() => parseWalSegmentSize(bad), TypeError);
    });
  }

  for (const bad of ['512kB', '2GB', '3MB', '0', '1000000', '1TB', '24MB']) {
    test(`rejects ${JSON.stringify(bad)}: not a power of two in 1MB..1GB`, () => {
      assert.throws(() => parseWalSegmentSize(bad), /expected a power of two between 1MB and 1GB/);
    });
  }
});

describe('segment arithmetic', () => {
  test('segments per log id for each size', () => {
    assert.equal(segmentsPerXLogId(MB), 4096n);
    assert.equal(segmentsPerXLogId(16 * MB), 256n);
    assert.equal(segmentsPerXLogId(64 * MB), 64n);
    assert.equal(segmentsPerXLogId(GB), 4n);
  });

  test('an LSN at a segment start vs the last byte of the previous segment (16MB)', () => {
    const seg = 16 * MB;
    assert.equal(segmentOf(parseLsn('0/1000000'), seg), 1n);
    assert.equal(segmentOffset(parseLsn('0/1000000'), seg), 0);
    assert.equal(segmentOf(parseLsn('0/FFFFFF'), seg), 0n);
    assert.equal(segmentOffset(parseLsn('0/FFFFFF'), seg), seg - 1);
    assert.equal(segmentOf(parseLsn('0/16B3748'), seg), 1n);
    assert.equal(segmentOffset(parseLsn('0/16B3748'), seg), 0x6b3748);
  });

  test('segmentStart is the inverse at boundaries, for several sizes', () => {
    for (const seg of [MB, 16 * MB, 64 * MB, GB]) {
      for (const segno of [0n, 1n, 255n, 256n, 4095n, 4096n, 123456n]) {
        const start = segmentStart(segno, seg);
        assert.equal(segmentOf(start, seg), segno);
        assert.equal(segmentOffset(start, seg), 0);
        if (segno > 0n) {
          assert.equal(segmentOf(start - 1n, seg), segno - 1n);
          assert.equal(segmentOffset(start - 1n, seg), seg - 1);
        }
      }
    }
  });

  test('positions beyond 2^53 stay exact', () => {
    const lsn = parseLsn('FFFFFFFF/FFFFFFFF');
    assert.equal(segmentOf(lsn, 16 * MB), 0xffffffffffn);
    assert.equal(segmentOffset(lsn, 16 * MB), 16 * MB - 1);
  });

  test('rejects segment sizes PostgreSQL does not allow', () => {
    assert.throws(() => segmentOf(0n, 3 * MB), RangeError);
    assert.throws(() => segmentsPerXLogId(2 * GB), RangeError);
    assert.throws(() => segmentStart(1n, 512 * 1024), RangeError);
  });
});

describe('walFileName / parseWalFileName', () => {
  test('16MB names like the server', () => {
    const seg = 16 * MB;
    assert.equal(walFileName(1, 0n, seg), '000000010000000000000000');
    assert.equal(walFileName(1, 1n, seg), '000000010000000000000001');
    assert.equal(walFileName(1, 0xffn, seg), '0000000100000000000000FF');
    assert.equal(walFileName(1, 0x100n, seg), '000000010000000100000000');
    assert.equal(walFileNameOfLsn(1, parseLsn('0/16B3748'), seg), '000000010000000000000001');
    assert.equal(walFileNameOfLsn(2, parseLsn('0/45312FC8'), seg), '000000020000000000000045');
    assert.equal(walFileNameOfLsn(1, parseLsn('5/A1000000'), seg), '0000000100000005000000A1');
  });

  test('timelines above 9 are hex', () => {
    assert.equal(walFileName(10, 1n, 16 * MB), '0000000A0000000000000001');
    assert.equal(walFileName(16, 1n, 16 * MB), '000000100000000000000001');
    assert.equal(walFileName(0xffffffff, 0n, 16 * MB), 'FFFFFFFF0000000000000000');
    assert.deepEqual(parseWalFileName('0000000A0000000000000001', 16 * MB), { tli: 10, segno: 1n });
    assert.deepEqual(parseWalFileName('000000100000000000000001', 16 * MB), { tli: 16, segno: 1n });
  });

  test('1MB segments: 4096 per log id', () => {
    const seg = MB;
    assert.equal(walFileName(1, 4095n, seg), '000000010000000000000FFF');
    assert.equal(walFileName(1, 4096n, seg), '000000010000000100000000');
    assert.equal(walFileNameOfLsn(1, parseLsn('0/16B3748'), seg), '000000010000000000000016');
    assert.equal(walFileNameOfLsn(1, parseLsn('1/0'), seg), '000000010000000100000000');
    assert.equal(walFileNameOfLsn(1, parseLsn('0/FFFFFFFF'), seg), '000000010000000000000FFF');
  });

  test('64MB and 1GB segments', () => {
    assert.equal(walFileNameOfLsn(1, parseLsn('0/16B3748'), 64 * MB), '000000010000000000000000');
    assert.equal(walFileNameOfLsn(1, parseLsn('0/FC000000'), 64 * MB), '00000001000000000000003F');
    assert.equal(walFileNameOfLsn(1, parseLsn('0/FBFFFFFF'), 64 * MB), '00000001000000000000003E');
    assert.equal(walFileNameOfLsn(1, parseLsn('0/C0000000'), GB), '000000010000000000000003');
    assert.equal(walFileNameOfLsn(1, parseLsn('0/BFFFFFFF'), GB), '000000010000000000000002');
    assert.equal(walFileNameOfLsn(1, parseLsn('7/40000000'), GB), '000000010000000700000001');
  });

  test('round-trips for every size', () => {
    for (const seg of [MB, 2 * MB, 16 * MB, 64 * MB, 256 * MB, GB]) {
      const per = segmentsPerXLogId(seg);
      for (const segno of [0n, 1n, per - 1n, per, per + 1n, per * 0xffffffffn + per - 1n]) {
        for (const tli of [1, 9, 10, 255, 0xffffffff]) {
          const name = walFileName(tli, segno, seg);
          assert.equal(name.length, 24);
          assert.deepEqual(parseWalFileName(name, seg), { tli, segno });
        }
      }
    }
  });

  test('walFileName rejects bad timelines and segment numbers', () => {
    assert.throws(() => walFileName(0, 1n, 16 * MB), RangeError);
    assert.throws(() => walFileName(1.5, 1n, 16 * MB), RangeError);
    assert.throws(() => walFileName(2 ** 32, 1n, 16 * MB), RangeError);
    assert.throws(() => walFileName(1, -1n, 16 * MB), RangeError);
    assert.throws(() => walFileName(1, 256n * 0x100000000n, 16 * MB), RangeError);
  });

  test('parseWalFileName rejects invalid names', () => {
    for (const bad of [
      '',
      '00000001000000000000001',
      '0000000100000000000000001',
      '0000000100000000000000ff', // lowercase: PostgreSQL never writes it
      '000000010000000000000001.partial',
      '00000002.history',
      '00000000000000000000000G',
    ]) {
      assert.throws(() => parseWalFileName(bad, 16 * MB), TypeError, bad);
    }
    assert.throws(() => parseWalFileName('000000000000000000000001', 16 * MB), /timeline 0/);
    // segment part must be below segments-per-log-id for this size
    assert.throws(() => parseWalFileName('000000010000000000000100', 16 * MB), /exceeds 000000FF/);
    assert.deepEqual(parseWalFileName('000000010000000000000100', MB), { tli: 1, segno: 256n });
    assert.throws(() => parseWalFileName('000000010000000000000004', GB), /exceeds 00000003/);
  });
});

describe('nextSegmentName', () => {
  test('crosses the log id boundary with 16MB', () => {
    assert.equal(nextSegmentName('0000000100000000000000FF', 16 * MB), '000000010000000100000000');
    assert.equal(nextSegmentName('000000010000000000000001', 16 * MB), '000000010000000000000002');
    assert.equal(nextSegmentName('0000000A00000000000000FE', 16 * MB), '0000000A00000000000000FF');
  });

  test('crosses the log id boundary with other sizes', () => {
    assert.equal(nextSegmentName('0000000100000000000000FF', MB), '000000010000000000000100');
    assert.equal(nextSegmentName('000000010000000000000FFF', MB), '000000010000000100000000');
    assert.equal(nextSegmentName('00000001000000000000003F', 64 * MB), '000000010000000100000000');
    assert.equal(nextSegmentName('000000010000000000000003', GB), '000000010000000100000000');
  });

  test('keeps the timeline', () => {
    assert.equal(nextSegmentName('000000100000000000000001', 16 * MB), '000000100000000000000002');
  });
});

describe('name classification', () => {
  test('isWalSegmentName', () => {
    assert.ok(isWalSegmentName('000000010000000000000001'));
    assert.ok(isWalSegmentName('0000000A00000001000000FF'));
    assert.ok(!isWalSegmentName('0000000a00000001000000ff'));
    assert.ok(!isWalSegmentName('000000010000000000000001.partial'));
    assert.ok(!isWalSegmentName('00000001000000000000001'));
    assert.ok(!isWalSegmentName('00000002.history'));
  });

  test('isPartialWalName', () => {
    assert.ok(isPartialWalName('000000010000000000000045.partial'));
    assert.ok(!isPartialWalName('000000010000000000000045'));
    assert.ok(!isPartialWalName('000000010000000000000045.partial.tmp'));
    assert.ok(!isPartialWalName('00000001000000000000045.partial'));
  });

  test('isHistoryFileName and historyFileName', () => {
    assert.equal(historyFileName(2), '00000002.history');
    assert.equal(historyFileName(10), '0000000A.history');
    assert.equal(historyFileName(16), '00000010.history');
    assert.ok(isHistoryFileName('0000000A.history'));
    assert.ok(!isHistoryFileName('0000000a.history'));
    assert.ok(!isHistoryFileName('000000002.history'));
    assert.ok(!isHistoryFileName('00000002.history.tmp'));
    assert.throws(() => historyFileName(0), RangeError);
  });

  test('isBackupHistoryName', () => {
    assert.ok(isBackupHistoryName('000000010000000000000002.00000028.backup'));
    assert.ok(!isBackupHistoryName('000000010000000000000002.backup'));
    assert.ok(!isBackupHistoryName('000000010000000000000002.00000028.backup.gz'));
    assert.ok(!isBackupHistoryName('000000010000000000000002.0000028.backup'));
  });

  test('walHashDir: timeline + log id, history files at the top', () => {
    assert.equal(walHashDir('0000000100000005000000A1'), '0000000100000005');
    assert.equal(walHashDir('0000000A00000000000000FF.partial'), '0000000A00000000');
    assert.equal(walHashDir('000000010000000000000002.00000028.backup'), '0000000100000000');
    assert.equal(walHashDir('00000002.history'), '');
    assert.throws(() => walHashDir('backup_label'), TypeError);
    assert.throws(() => walHashDir('0000000100000000000000'), TypeError);
  });
});

describe('compareWalNames', () => {
  test('sorts by timeline then position, suffixed files after their segment', () => {
    const names = [
      '000000020000000000000001',
      '0000000100000001000000000',
      '000000010000000100000000',
      '0000000100000000000000FF',
      '0000000A0000000000000001',
      '0000000100000000000000FF.partial',
      '00000002.history',
      '000000010000000000000002.00000028.backup',
      '000000010000000000000002',
    ].filter(isSortable);
    assert.deepEqual([...names].sort(compareWalNames), [
      '000000010000000000000002',
      '000000010000000000000002.00000028.backup',
      '0000000100000000000000FF',
      '0000000100000000000000FF.partial',
      '000000010000000100000000',
      '00000002.history',
      '000000020000000000000001',
      '0000000A0000000000000001',
    ]);
    assert.equal(compareWalNames('000000010000000000000001', '000000010000000000000001'), 0);
  });
});

function isSortable(name: string): boolean {
  return isWalSegmentName(name) || isPartialWalName(name) || isHistoryFileName(name) || isBackupHistoryName(name);
}
