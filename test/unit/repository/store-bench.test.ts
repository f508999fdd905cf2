// Throughput of StoreWorkerPool.storeFile per codec on 100 MB of table-like data (pgbench rows,
// some random pages, some empty pages). Informational: prints numbers, asserts only correctness.
// Skipped unless BARMANTS_BENCH=1 (it writes ~400 MB to the temp directory).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CODECS, StoreWorkerPool, codecSuffix, zstdFromZlib } from '../../../packages/barmants/src/repository/index.js';

const enabled = process.env.BARMANTS_BENCH === '1';
const MB = 1 << 20;
let dir: string;

/** 8 KiB heap-like pages: 70% pgbench_accounts rows, 20% random (toasted/compressed), 10% empty. */
function tableLikeData(bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  let aid = 1;
  for (let off = 0; off < bytes; off += 8192) {
    const kind = (off / 8192) % 10;
    if (kind === 9) continue;
    if (kind >= 7) {
      randomBytes(Math.min(8192, bytes - off)).copy(out, off);
      continue;
    }
    let p = off + 24;
    while (p + 121 < Math.min(off + 8192, bytes)) {
      out.writeUInt32LE(aid, p);
      out.writeUInt32LE(Math.ceil(aid / 100000), p + 4);
      out.writeInt32LE(((aid * 2654435761) % 10000) - 5000, p + 8);
      out.fill(0x20, p + 12, p + 96);
      out.writeUInt32LE(Math.floor(Math.random() * 2 ** 32), p + 96);
      aid++;
      p += 121;
    }
  }
  return out;
}

before(async () => { dir = await mkdtemp(join(tmpdir(), 'barmants-bench-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

test('storeFile throughput per codec (100 MB)', { skip: !enabled && 'set BARMANTS_BENCH=1' }, async () => {
  const data = tableLikeData(100 * MB);
  const src = join(dir, 'src');
  await writeFile(src, data);
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += MB) chunks.push(data.subarray(i, i + MB));
  const pool = new StoreWorkerPool();
  await pool.warm();
  try {
    console.log(`# ${availableParallelism()} CPUs, zstd from ${zstdFromZlib ? 'node:zlib' : 'zstd-napi'}`);
    for (const codec of CODECS) {
      let t = performance.now();
      const r = await pool.storeFile({ source: src, dest: join(dir, `f${codecSuffix(codec)}`), codec });
      const single = performance.now() - t;
      assert.equal(r.size, data.length);
      t = performance.now();
      await pool.storeFile({ source: chunks, dest: join(dir, `b${codecSuffix(codec)}`), codec });
      const fromBuffers = performance.now() - t;
      t = performance.now();
      await Promise.all(Array.from({ length: 4 }, (_, i) =>
        pool.storeFile({ source: chunks.slice(i * 25, i * 25 + 25), dest: join(dir, `p${i}${codecSuffix(codec)}`), codec })));
      const parallel = performance.now() - t;
      t = performance.now();
      await pool.hashFile(join(dir, `f${codecSuffix(codec)}`), codec, 'blake3');
      const verify = performance.now() - t;
      const rate = (ms: number): string => `${(100 / (ms / 1000)).toFixed(0)} MB/s`;
      console.log(`# ${codec.padEnd(5)} ratio ${(r.storedSize / r.size).toFixed(3)}  file ${rate(single)}  buffers ${rate(fromBuffers)}  4x25MB parallel ${rate(parallel)}  hashFile ${rate(verify)}`);
    }
  } finally {
    await pool.close();
  }
});
