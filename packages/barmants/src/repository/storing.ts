// The work a store worker does, as plain async functions: compress + hash + durable write of one
// file, hard-link reuse of an identical file, and hashing of a stored file's content. Kept apart
// from the thread plumbing so it reads (and can be tested) as ordinary code.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createFileChecksum, type ChecksumAlgorithm, type FileChecksum } from 'pg-replication/checksum';
import { CONTENT_ALGORITHM, createContentHash, hashBuffers, hashRawFile, type ContentAlgorithm } from './checksum.js';
import { compressWhole, createCompressor, createDecompressor, type Codec } from './codec.js';
import { DurableWriter, linkDurable, TmpFile } from './durable.js';

export interface StoredFile {
  /**
   * hex checksum of the uncompressed content: SHA-256 from storeFile (WAL), CONTENT_ALGORITHM from
   * ContentSums (backup members)
   */
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

/** Compresses, hashes (SHA-256: WAL's catalog checksum) and durably writes `source` as `dest` (via dest.tmp). */
async function storeChunks(
  source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  dest: string,
  codec: Codec,
  level?: number,
  sync = true,
): Promise<StoredFile> {
  const writer = await DurableWriter.open(dest);
  const hash = createContentHash('sha256');
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
    return { checksum: hash.digest(), size, storedSize, reused: false };
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
      const digest = typeof source === 'string' ? await hashRawFile(source, 'sha256') : hashBuffers(source, 'sha256');
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

/** Checksum and size of a stored file's uncompressed content, plus its size on disk. */
export async function hashStoredFile(path: string, codec: Codec, alg: ContentAlgorithm): Promise<{ checksum: string; size: number; storedSize: number }> {
  const hash = createContentHash(alg);
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
  return { checksum: hash.digest(), size, storedSize };
}

/**
 * A backup member's checksum (CONTENT_ALGORITHM) and size as it goes by, and its checksum in a
 * manifest's algorithm when one is asked for.
 */
export class ContentSums {
  private readonly content = createContentHash(CONTENT_ALGORITHM);
  private readonly manifest: FileChecksum | null;
  size = 0;

  constructor(manifestChecksum?: ChecksumAlgorithm) {
    this.manifest = manifestChecksum && manifestChecksum !== 'NONE' ? createFileChecksum(manifestChecksum) : null;
  }

  update(chunk: Uint8Array): void {
    this.content.update(chunk);
    this.manifest?.update(chunk as Buffer);
    this.size += chunk.length;
  }

  /** What was stored, once all the content went by and `storedSize` bytes were written. */
  stored(storedSize: number): StoredFile {
    const m = this.manifest ? { manifestChecksum: this.manifest.digest() } : {};
    return { checksum: this.content.digest(), size: this.size, storedSize, reused: false, ...m };
  }
}

/**
 * An uncompressed file written from the calling thread as its bytes arrive, with synchronous
 * syscalls: each chunk is hashed (CONTENT_ALGORITHM, and the manifest's algorithm when asked) and written
 * straight from the caller's buffer, which may be reused as soon as `write` returns. This is how
 * an uncompressed backup stores members without a copy or a thread hop (pg_basebackup's way).
 * Writes go to dest.tmp and reach the page cache; `finish` renames without fsync (syncTree later).
 */
export class PlainFileWriter {
  private readonly sums: ContentSums;
  private readonly file: TmpFile;

  constructor(dest: string, manifestChecksum?: ChecksumAlgorithm) {
    this.sums = new ContentSums(manifestChecksum);
    this.file = TmpFile.open(dest);
    // Large members' write-back starts while they arrive (see Writeback).
    this.file.startWriteback();
  }

  write(chunk: Uint8Array): void {
    this.sums.update(chunk);
    try {
      this.file.write(chunk);
    } catch (err) {
      this.file.abort();
      throw err;
    }
  }

  /** Renames the file into place, once the write-back started for it (if any) has finished. */
  finish(): StoredFile | Promise<StoredFile> {
    if (!this.file.hasWriteback) return this.sums.stored(this.file.commit({ sync: false }));
    return this.file.settle().then(
      () => this.sums.stored(this.file.commit({ sync: false })),
      (err: unknown) => {
        this.file.abort();
        throw err;
      },
    );
  }

  abort(): void {
    this.file.abort();
  }
}

/**
 * Stores a small file held in memory: one hash, one compression call, one write. The batch path
 * of the store workers (see StoreWorkerPool.storePacked), which fsyncs the directories once per batch.
 */
export function storeSmall(source: Uint8Array[], dest: string, spec: StoreSpec): StoredFile {
  const data = source.length === 1 ? Buffer.from(source[0]!.buffer, source[0]!.byteOffset, source[0]!.byteLength) : Buffer.concat(source);
  const sums = new ContentSums(spec.manifestChecksum);
  sums.update(data);
  const out = compressWhole(spec.codec, data, spec.level);
  const file = TmpFile.open(dest);
  try {
    file.write(out);
    return sums.stored(file.commit({ sync: spec.sync ?? true }));
  } catch (err) {
    file.abort();
    throw err;
  }
}
