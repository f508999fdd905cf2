// Content checksums: BLAKE3 for backup members (published test vectors, any split of the input),
// SHA-256 still available for older backups and WAL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONTENT_ALGORITHM, createContentHash, hashBuffers, hashRawFile } from '../../../packages/barmants/src/repository/checksum.js';

test('new backups are checksummed with BLAKE3', () => {
  assert.equal(CONTENT_ALGORITHM, 'blake3');
});

test('BLAKE3 matches the published vectors', () => {
  const empty = createContentHash('blake3');
  assert.equal(empty.digest(), 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
  const abc = createContentHash('blake3');
  abc.update(Buffer.from('abc'));
  assert.equal(abc.digest(), '6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85');
});

test('any split of the input gives the same digest, for both algorithms; shared memory is accepted', async () => {
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const shared = new Uint8Array(new SharedArrayBuffer(data.length));
  shared.set(data);
  const dir = await mkdtemp(join(tmpdir(), 'barmants-sum-'));
  try {
    await writeFile(join(dir, 'f'), data);
    for (const alg of ['blake3', 'sha256'] as const) {
      const whole = hashBuffers([data], alg).checksum;
      if (alg === 'sha256') assert.equal(whole, createHash('sha256').update(data).digest('hex'));
      const pieces = hashBuffers([shared.subarray(0, 1), shared.subarray(1, 65537), shared.subarray(65537, 1 << 21), shared.subarray(1 << 21)], alg);
      assert.deepEqual(pieces, { checksum: whole, size: data.length }, alg);
      assert.deepEqual(await hashRawFile(join(dir, 'f'), alg), { checksum: whole, size: data.length }, alg);
    }
    assert.notEqual(hashBuffers([data], 'blake3').checksum, hashBuffers([data], 'sha256').checksum);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
