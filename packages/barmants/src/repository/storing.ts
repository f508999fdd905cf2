// The work a store worker does, as plain async functions: compress + hash + durable write of one
// file, hard-link reuse of an identical file, and hashing of a stored file's content. Kept apart
// from the thread plumbing so it reads (and can be tested) as ordinary code.
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { stat } from 'node:fs/promises';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createFileChecksum, type ChecksumAlgorithm, type FileChecksum } from 'pg-replication/checksum';
import { sha256Buffers, sha256File } from './checksum.js';
import { compressWhole, createCompressor, createDecompressor, type Codec } from './codec.js';
import { DurableWriter, fsyncDir, linkDurable, TMP_SUFFIX } from './durable.js';

export interface StoredFile {
  /** sha256 hex of the uncompressed content */
  checksum: string;
  /** uncompressed size */
  size: number;
  /** size on disk (compressed) */
  storedSize: number;
  /** true when dest is a hard link to reuseFrom.path */
  reused: boolean;
  /** the content's checksum in a backup manifest's algorithm, when one was asked for */
  manifestChecksum?: string;
}

/** How a file is stored: codec and level, whether to fsync it, which manifest checksum to compute. */
export interface StoreSpec {
  codec: Codec;
  level?: number;
  /** false leaves fsync to the caller (syncTree); default true */
  sync?: boolean;
  manifestChecksum?: ChecksumAlgorithm;
}

export interface ReuseCandidate {
  /** the same file in an earlier backup, stored with the same codec */
  path: string;
  checksum: string;
  size: number;
}

export interface StoreFileJob {
  /** the content, or the path of a (temporary) file holding it; the source is never removed */
  source: Buffer[] | string;
  dest: string;
  codec: Codec;
  level?: number;
  reuseFrom?: ReuseCandidate;
  manifestChecksum?: ChecksumAlgorithm;
}

const READ_CHUNK = 1 << 20;
const WRITE_BATCH = 1 << 20;

/** Compresses, hashes and durably writes `source` as `dest` (via dest.tmp). */
export async function storeChunks(
  source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  dest: string,
  codec: Codec,
  level?: number,
  sync = true,
): Promise<StoredFile> {
  const writer = await DurableWriter.open(dest);
  const hash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  try {
    await pipeline(
      // highWaterMark 1: the source is pulled one chunk at a time, so a streaming producer's
      // acknowledgements measure what really left its hands.
      Readable.from(source, { objectMode: true, highWaterMark: 1 }),
      tap,
      createCompressor(codec, level),
      async (compressed: AsyncIterable<Buffer>) => {
        // Coalesce the compressors' small outputs (16 KiB for zlib) into ~1 MiB writes.
        let batch: Buffer[] = [];
        let batchBytes = 0;
        for await (const c of compressed) {
          batch.push(c);
          batchBytes += c.length;
          if (batchBytes >= WRITE_BATCH) {
            await writer.write(batch.length === 1 ? batch[0]! : Buffer.concat(batch, batchBytes));
            batch = [];
            batchBytes = 0;
          }
        }
        if (batchBytes > 0) await writer.write(batch.length === 1 ? batch[0]! : Buffer.concat(batch, batchBytes));
      },
    );
    const storedSize = await writer.commit({ sync });
    return { checksum: hash.digest('hex'), size, storedSize, reused: false };
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

export async function storeFile(job: StoreFileJob): Promise<StoredFile> {
  const { source, dest, codec, level, reuseFrom } = job;
  if (reuseFrom) {
    // Only hash up front when the sizes already agree: a changed size means a changed file.
    const size = typeof source === 'string' ? (await stat(source)).size : source.reduce((n, b) => n + b.length, 0);
    if (size === reuseFrom.size) {
      const digest = typeof source === 'string' ? await sha256File(source) : sha256Buffers(source);
      if (digest.size === reuseFrom.size && digest.checksum === reuseFrom.checksum) {
        await linkDurable(reuseFrom.path, dest);
        const storedSize = (await stat(dest)).size;
        return { checksum: digest.checksum, size: digest.size, storedSize, reused: true };
      }
    }
  }
  const chunks = typeof source === 'string' ? createReadStream(source, { highWaterMark: READ_CHUNK }) : source;
  return storeChunks(chunks, dest, codec, level);
}

/** sha256 and size of a stored file's uncompressed content, plus its size on disk. */
export async function hashStoredFile(path: string, codec: Codec): Promise<{ checksum: string; size: number; storedSize: number }> {
  const hash = createHash('sha256');
  let size = 0;
  let storedSize = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      storedSize += chunk.length;
      cb(null, chunk);
    },
  });
  await pipeline(createReadStream(path, { highWaterMark: READ_CHUNK }), counter, createDecompressor(codec), async (src: AsyncIterable<Buffer>) => {
    for await (const c of src) {
      hash.update(c);
      size += c.length;
    }
  });
  return { checksum: hash.digest('hex'), size, storedSize };
}

/**
 * Stores uncompressed content from the calling thread with synchronous syscalls: hash and write
 * each chunk as it arrives, no stream plumbing and no thread-pool hop per call. Handing chunks to
 * a worker costs a copy per chunk, and awaiting the libuv pool for open/write/close/rename per
 * file dominated for clusters of many small files (pg_basebackup writes the same way, in a tight
 * loop). Writes go to the page cache; `sync: false` leaves fsync to the caller (syncTree).
 */
export async function storePlain(source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, dest: string, sync = true): Promise<StoredFile> {
  return storeFramed(source, dest, { codec: 'none', sync });
}

function manifestSum(alg: ChecksumAlgorithm | undefined): FileChecksum | null {
  return alg && alg !== 'NONE' ? createFileChecksum(alg) : null;
}

/**
 * An uncompressed file written from the calling thread as its bytes arrive, with synchronous
 * syscalls: each chunk is hashed (SHA-256, and the manifest's algorithm when asked) and written
 * straight from the caller's buffer, which may be reused as soon as `write` returns. This is how
 * an uncompressed backup stores members without a copy or a thread hop (pg_basebackup's way).
 * Writes go to dest.tmp and reach the page cache; `finish` renames without fsync (syncTree later).
 */
export class PlainFileWriter {
  private readonly tmp: string;
  private readonly fd: number;
  private readonly hash = createHash('sha256');
  private readonly msum: FileChecksum | null;
  private size = 0;

  constructor(private readonly dest: string, manifestChecksum?: ChecksumAlgorithm) {
    this.tmp = dest + TMP_SUFFIX;
    this.fd = openSync(this.tmp, 'w', 0o600);
    this.msum = manifestSum(manifestChecksum);
  }

  write(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.msum?.update(chunk as Buffer);
    let off = 0;
    try {
      while (off < chunk.length) off += writeSync(this.fd, chunk, off, chunk.length - off, this.size + off);
    } catch (err) {
      this.abort();
      throw err;
    }
    this.size += chunk.length;
  }

  finish(): StoredFile {
    closeSync(this.fd);
    renameSync(this.tmp, this.dest);
    const m = this.msum ? { manifestChecksum: this.msum.digest() } : {};
    return { checksum: this.hash.digest('hex'), size: this.size, storedSize: this.size, reused: false, ...m };
  }

  abort(): void {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
    rmSync(this.tmp, { force: true });
  }
}

/**
 * Stores a small file held in memory: one hash, one compression call, one write. The batch path
 * of the store workers (see StoreWorkerPool.storeBatch).
 */
export function storeSmall(source: Uint8Array[], dest: string, spec: StoreSpec): StoredFile {
  const { codec, level } = spec;
  const sync = spec.sync ?? true;
  const data = source.length === 1 ? Buffer.from(source[0]!.buffer, source[0]!.byteOffset, source[0]!.byteLength) : Buffer.concat(source);
  const checksum = createHash('sha256').update(data).digest('hex');
  const msum = manifestSum(spec.manifestChecksum);
  msum?.update(data);
  const out = compressWhole(codec, data, level);
  const tmp = dest + TMP_SUFFIX;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    fchmodSync(fd, 0o600);
    let off = 0;
    while (off < out.length) off += writeSync(fd, out, off, out.length - off);
    if (sync) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, dest);
  return { checksum, size: data.length, storedSize: out.length, reused: false, ...(msum ? { manifestChecksum: msum.digest() } : {}) };
}

/**
 * Streams a large file into storage as a sequence of independently compressed frames, one per
 * chunk (at most 1 MiB): concatenated gzip members, zstd frames and LZ4 frames are each a valid
 * file of their codec. One compression call per chunk with a reused context, instead of a stream
 * pipeline, keeps the store workers' CPU on compression itself.
 */
export async function storeFramed(source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, dest: string, spec: StoreSpec): Promise<StoredFile> {
  const { codec, level } = spec;
  const sync = spec.sync ?? true;
  const tmp = dest + TMP_SUFFIX;
  const fd = openSync(tmp, 'w', 0o600);
  const hash = createHash('sha256');
  const msum = manifestSum(spec.manifestChecksum);
  let size = 0;
  let stored = 0;
  try {
    fchmodSync(fd, 0o600);
    for await (const chunk of source) {
      if (chunk.length === 0) continue;
      const data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      hash.update(data);
      msum?.update(data);
      size += data.length;
      const out = compressWhole(codec, data, level);
      let off = 0;
      while (off < out.length) off += writeSync(fd, out, off, out.length - off, stored + off);
      stored += out.length;
    }
    if (size === 0 && codec !== 'none') {
      // An empty file is still a valid, empty compressed file.
      const out = compressWhole(codec, Buffer.alloc(0), level);
      writeSync(fd, out, 0, out.length, 0);
      stored = out.length;
    }
    if (sync) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, dest);
  if (sync) await fsyncDir(dirname(dest));
  return { checksum: hash.digest('hex'), size, storedSize: stored, reused: false, ...(msum ? { manifestChecksum: msum.digest() } : {}) };
}
