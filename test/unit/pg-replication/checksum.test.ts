/*
 * Unit tests for manifest file checksums: CRC32C against the standard check value, printed in the
 * server's little-endian byte order, incremental over any chunking; SHA family via node:crypto.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  CHECKSUM_ALGORITHMS,
  createFileChecksum,
  isChecksumAlgorithm,
  type ChecksumAlgorithm,
} from '../../../packages/pg-replication/src/checksum.js';

function checksumOf(alg: ChecksumAlgorithm, ...chunks: Buffer[]): string {
  const sum = createFileChecksum(alg);
  for (const chunk of chunks) sum.update(chunk);
  return sum.digest();
}

describe('CRC32C', () => {
  test('check value of "123456789" (0xE3069283) printed little-endian', () => {
    assert.equal(checksumOf('CRC32C', Buffer.from('123456789')), '839206e3');
  });

  test('empty file', () => {
    assert.equal(checksumOf('CRC32C'), '00000000');
    assert.equal(checksumOf('CRC32C', Buffer.alloc(0)), '00000000');
  });

  test('RFC 3720 vectors: 32 zero bytes and 32 0xFF bytes', () => {
    // iSCSI CRC32C values 0x8A9136AA and 0x62A8AB43, bytes reversed as the manifest prints them
    assert.equal(checksumOf('CRC32C', Buffer.alloc(32, 0)), 'aa36918a');
    assert.equal(checksumOf('CRC32C', Buffer.alloc(32, 0xff)), '43aba862');
  });

  test('any chunking gives the same digest', () => {
    const data = Buffer.alloc(100_003);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 7)) & 0xff;
    const whole = checksumOf('CRC32C', data);
    for (const size of [1, 7, 8192, 65536]) {
      const chunks: Buffer[] = [];
      for (let at = 0; at < data.length; at += size) chunks.push(data.subarray(at, at + size));
      assert.equal(checksumOf('CRC32C', ...chunks), whole, `chunks of ${size}`);
    }
    assert.match(whole, /^[0-9a-f]{8}$/);
  });

  test('a CRC with the high bit set still prints 8 digits', () => {
    // 0xE3069283 is above 2^31: guards against signed-int printing
    assert.equal(checksumOf('CRC32C', Buffer.from('123'), Buffer.from('456789')).length, 8);
  });
});

describe('SHA family', () => {
  for (const alg of ['SHA224', 'SHA256', 'SHA384', 'SHA512'] as const) {
    test(`${alg} matches node:crypto, incrementally`, () => {
      const data = Buffer.from('PostgreSQL backup manifest file content\n'.repeat(1000));
      const expected = createHash(alg.toLowerCase()).update(data).digest('hex');
      assert.equal(checksumOf(alg, data.subarray(0, 17), data.subarray(17)), expected);
    });
  }

  test('SHA256 of "abc"', () => {
    assert.equal(
      checksumOf('SHA256', Buffer.from('abc')),
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });
});

describe('NONE and names', () => {
  test('NONE ignores content and digests to the empty string', () => {
    assert.equal(checksumOf('NONE', Buffer.from('x')), '');
  });

  test('isChecksumAlgorithm knows exactly the manifest names', () => {
    for (const alg of CHECKSUM_ALGORITHMS) assert.ok(isChecksumAlgorithm(alg));
    for (const bad of ['crc32c', 'SHA1', 'MD5', '']) assert.ok(!isChecksumAlgorithm(bad));
  });

  test('an unknown algorithm is rejected', () => {
    assert.throws(() => createFileChecksum('MD5' as ChecksumAlgorithm), TypeError);
  });
});
