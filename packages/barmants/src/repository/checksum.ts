// SHA-256 of uncompressed content: the checksum every stored file carries in the catalog.
// Small helpers so that hashing is always done the same way (hex, lowercase).
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';

export interface ContentDigest {
  /** sha256 hex of the bytes seen */
  checksum: string;
  /** number of bytes seen */
  size: number;
}

/** sha256 and size of a file's raw bytes (no decompression: see hashFile in store.ts for that). */
export async function sha256File(path: string): Promise<ContentDigest> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { checksum: hash.digest('hex'), size };
}

export function sha256Buffers(bufs: readonly Uint8Array[]): ContentDigest {
  const hash = createHash('sha256');
  let size = 0;
  for (const b of bufs) {
    hash.update(b);
    size += b.length;
  }
  return { checksum: hash.digest('hex'), size };
}

/** A pass-through stream that hashes what flows through it; `digest()` once it has ended. */
export class Sha256Stream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;
  private result: ContentDigest | null = null;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.result = { checksum: this.hash.digest('hex'), size: this.bytes };
    cb();
  }

  digest(): ContentDigest {
    if (!this.result) throw new Error('sha256 stream has not ended');
    return this.result;
  }
}

export function sha256Stream(): Sha256Stream {
  return new Sha256Stream();
}
