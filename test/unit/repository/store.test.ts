// The store worker pool (parallel jobs, reuse by hard link, hashing, packed small files, parallel
// frames) and the synchronous writers of storing.ts.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { CODECS, PlainFileWriter, StoreWorkerPool, TRANSFER_BUFFER, codecSuffix } from '../../../packages/barmants/src/repository/index.js';
import { storeSmall } from '../../../packages/barmants/src/repository/storing.js';
import { isBarmantsError as isBarmants } from '../../../packages/barmants/src/errors/index.js';

let dir: string;
let pool: StoreWorkerPool;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'barmants-store-'));
  pool = new StoreWorkerPool(4);
});
after(async () => {
  await pool.close();
  await rm(dir, { recursive: true, force: true });
});

// storeFile (WAL) keeps SHA-256; backup members (packed, parallel frames, PlainFileWriter,
// storeSmall) carry BLAKE3, computed here with the library directly, not through our wrapper.
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const { blake3 } = createRequire(import.meta.url)('@napi-rs/blake-hash') as { blake3: (b: Buffer) => Buffer };
const b3 = (b: Buffer): string => blake3(b).toString('hex');

describe('StoreWorkerPool', () => {
  test('parallel jobs of every codec, from buffers and from files', async () => {
    const data = Buffer.concat([Buffer.from('row\n'.repeat(100000)), randomBytes(300000)]);
    const src = join(dir, 'source.bin');
    await writeFile(src, data);
    const jobs = CODECS.flatMap((codec) => [
      pool.storeFile({ source: [data.subarray(0, 1000), data.subarray(1000)], dest: join(dir, `buf${codecSuffix(codec)}`), codec }),
      pool.storeFile({ source: src, dest: join(dir, `file${codecSuffix(codec)}`), codec, level: 1 }),
    ]);
    const results = await Promise.all(jobs);
    for (const r of results) {
      assert.equal(r.checksum, sha(data));
      assert.equal(r.size, data.length);
      assert.equal(r.reused, false);
    }
    assert.equal(gunzipSync(await readFile(join(dir, 'buf.gz'))).equals(data), true);
    for (const codec of CODECS) {
      const p = join(dir, `file${codecSuffix(codec)}`);
      const h = await pool.hashFile(p, codec, 'sha256');
      assert.deepEqual(h, { checksum: sha(data), size: data.length, storedSize: (await stat(p)).size });
      assert.equal((await stat(p)).mode & 0o777, 0o600);
    }
    assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.tmp')), []);
  });

  test('empty file', async () => {
    for (const codec of CODECS) {
      const r = await pool.storeFile({ source: [], dest: join(dir, `empty${codecSuffix(codec)}`), codec });
      assert.equal(r.size, 0);
      assert.equal(r.checksum, sha(Buffer.alloc(0)));
      assert.equal((await pool.hashFile(join(dir, `empty${codecSuffix(codec)}`), codec, 'sha256')).size, 0);
    }
  });

  test('reuse: identical content is a hard link, changed content is stored', async () => {
    const data = randomBytes(200000);
    const first = await pool.storeFile({ source: [data], dest: join(dir, 'r1.zst'), codec: 'zstd' });
    const reuseFrom = { path: join(dir, 'r1.zst'), checksum: first.checksum, size: first.size };
    const same = await pool.storeFile({ source: [data], dest: join(dir, 'r2.zst'), codec: 'zstd', reuseFrom });
    assert.equal(same.reused, true);
    assert.equal(same.storedSize, first.storedSize);
    assert.equal((await stat(join(dir, 'r2.zst'))).ino, (await stat(join(dir, 'r1.zst'))).ino);
    const changed = Buffer.from(data);
    changed[5] ^= 1;
    const other = await pool.storeFile({ source: [changed], dest: join(dir, 'r3.zst'), codec: 'zstd', reuseFrom });
    assert.equal(other.reused, false);
    assert.notEqual((await stat(join(dir, 'r3.zst'))).ino, (await stat(join(dir, 'r1.zst'))).ino);
  });

  test('errors come back as BarmantsError, corrupt data as integrity', async () => {
    await assert.rejects(pool.storeFile({ source: join(dir, 'missing'), dest: join(dir, 'x'), codec: 'none' }), (e) => isBarmants(e, 'io'));
    await writeFile(join(dir, 'bad.gz'), 'not gzip at all');
    await assert.rejects(pool.hashFile(join(dir, 'bad.gz'), 'gzip', 'sha256'), (e) => isBarmants(e, 'integrity'));
    // The pool is still usable afterwards.
    assert.equal((await pool.storeFile({ source: [Buffer.from('ok')], dest: join(dir, 'ok'), codec: 'none' })).size, 2);
  });

  test('packed small files: every codec, manifest CRC32C, shared slabs reused', async () => {
    const { createFileChecksum } = await import('../../../packages/pg-replication/src/checksum.js');
    let batches = 0;
    for (const codec of CODECS) {
      const packer = pool.packer({ codec, sync: false, manifestChecksum: 'CRC32C' });
      // ~3 transfer buffers' worth in all, whatever their size
      const files = Array.from({ length: 300 }, (_, i) => ({ dest: join(dir, `packed-${codec}-${i}${codecSuffix(codec)}`), body: i % 7 === 0 ? Buffer.alloc(0) : randomBytes(1 + ((i * 7919) % Math.floor(TRANSFER_BUFFER / 50))) }));
      const results = new Map<string, { checksum: string; size: number; manifestChecksum?: string }>();
      const sent: Promise<void>[] = [];
      for (const f of files) {
        const p = packer.begin(f.dest, f.body.length);
        if (p) sent.push(p);
        // Delivered in pieces, as the archive reader does; the caller's buffer is then overwritten.
        for (let off = 0; off < f.body.length; off += 4096) {
          const piece = Buffer.from(f.body.subarray(off, off + 4096));
          packer.append(piece);
          piece.fill(0);
        }
        packer.commit((d) => void results.set(f.dest, d));
      }
      const last = packer.flush();
      if (last) sent.push(last);
      await Promise.all(sent);
      assert.ok(sent.length > 1, 'several slabs were used');
      batches += sent.length;
      for (const f of files) {
        const r = results.get(f.dest)!;
        assert.equal(r.size, f.body.length);
        assert.equal(r.checksum, b3(f.body));
        const crc = createFileChecksum('CRC32C');
        crc.update(f.body);
        assert.equal(r.manifestChecksum, crc.digest());
        assert.deepEqual((await pool.hashFile(f.dest, codec, 'blake3')).checksum, b3(f.body));
      }
    }
    // Slabs are released when a batch is stored and taken again by the next codec's batches.
    assert.ok(pool.slabCount < batches, `${pool.slabCount} slabs for ${batches} batches`);
  });

  test('parallel frames: every codec, frames written in order, incompressible and empty files', async () => {
    const { createFileChecksum } = await import('../../../packages/pg-replication/src/checksum.js');
    // Several frames each (one per transfer buffer), whatever the buffers' size.
    const compressible = Buffer.from('0123456789abcdef row of a table '.repeat(Math.ceil((3.2 * TRANSFER_BUFFER) / 32)));
    const random = randomBytes(2 * TRANSFER_BUFFER + 333); // frames larger than their slab for lz4
    for (const codec of CODECS.filter((c) => c !== 'none')) {
      for (const [name, body] of [['text', compressible], ['random', random], ['empty', Buffer.alloc(0)]] as const) {
        const dest = join(dir, `frames-${name}${codecSuffix(codec)}`);
        const w = pool.openParallelFile(dest, { codec, sync: false, manifestChecksum: 'CRC32C' });
        // Irregular pieces, overwritten after each push as the receive buffer would be.
        for (let off = 0, i = 0; off < body.length; i++) {
          const n = Math.min(body.length - off, [65536, 1000, 300_000, 1 << 20][i % 4]!);
          const piece = Buffer.from(body.subarray(off, off + n));
          if (!w.push(piece)) await w.drained();
          piece.fill(0xaa);
          off += n;
        }
        const r = await w.finish();
        const crc = createFileChecksum('CRC32C');
        crc.update(body);
        assert.equal(r.size, body.length);
        assert.equal(r.checksum, b3(body));
        assert.equal(r.manifestChecksum, crc.digest());
        const back = await pool.hashFile(dest, codec, 'blake3');
        assert.deepEqual(back, { checksum: b3(body), size: body.length, storedSize: r.storedSize }, `${codec} ${name}`);
      }
    }
  });
});

describe('synchronous writers', () => {
  test('PlainFileWriter: hashed as written, renamed on finish, nothing left on abort', async () => {
    const { createFileChecksum } = await import('../../../packages/pg-replication/src/checksum.js');
    const body = randomBytes(300_000);
    const dest = join(dir, 'plain');
    const w = new PlainFileWriter(dest, 'CRC32C');
    for (let off = 0; off < body.length; off += 65536) {
      const piece = Buffer.from(body.subarray(off, off + 65536));
      w.write(piece);
      piece.fill(0); // the caller's buffer may be reused as soon as write returns
    }
    const r = w.finish();
    const crc = createFileChecksum('CRC32C');
    crc.update(body);
    assert.deepEqual(r, { checksum: b3(body), size: body.length, storedSize: body.length, reused: false, manifestChecksum: crc.digest() });
    assert.equal((await readFile(dest)).equals(body), true);
    assert.equal((await stat(dest)).mode & 0o777, 0o600);

    const aborted = new PlainFileWriter(join(dir, 'plain-aborted'));
    aborted.write(body);
    aborted.abort();
    const names = await readdir(dir);
    assert.equal(names.some((n) => n.startsWith('plain-aborted')), false);
  });

  test('PlainFileWriter: a large file starts its write-back while written, renamed only once it finished', async () => {
    const body = randomBytes(20 << 20); // past the 8 MiB write-back step twice
    const dest = join(dir, 'plain-large');
    const w = new PlainFileWriter(dest, 'NONE');
    for (let off = 0; off < body.length; off += 1 << 20) {
      const piece = Buffer.from(body.subarray(off, off + (1 << 20)));
      w.write(piece);
      piece.fill(0);
    }
    const pending = w.finish();
    assert.ok(pending instanceof Promise, 'finish waits for the write-back it started');
    assert.equal((await readdir(dir)).includes('plain-large'), false, 'not in place before the write-back settled');
    const r = await pending;
    assert.equal(r.size, body.length);
    assert.equal(r.checksum, b3(body));
    assert.equal((await readFile(dest)).equals(body), true);
    assert.equal((await readdir(dir)).some((n) => n.startsWith('plain-large.')), false, 'no tmp left');
  });

  test('storeSmall: one compressed write, 0600 over a leftover tmp, no tmp left', async () => {
    const body = Buffer.from('small file '.repeat(500));
    const dest = join(dir, 'small.gz');
    await writeFile(dest + '.tmp', 'left by a crash');
    await chmod(dest + '.tmp', 0o644);
    const r = storeSmall([body.subarray(0, 100), body.subarray(100)], dest, { codec: 'gzip', manifestChecksum: 'NONE' });
    assert.equal(r.checksum, b3(body));
    assert.equal(r.size, body.length);
    assert.equal(r.storedSize, (await stat(dest)).size);
    assert.equal(r.manifestChecksum, undefined);
    assert.equal(gunzipSync(await readFile(dest)).equals(body), true);
    assert.equal((await stat(dest)).mode & 0o777, 0o600);
    assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith('small')), ['small.gz']);
  });
});
