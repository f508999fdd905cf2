// Compression codecs of stored files (WAL segments, backup files) as Node Transform streams.
// Every codec writes the standard container format, so stored files open with the stock `gzip`,
// `lz4` and `zstd` tools: an operator must never need barmants to read their own backups.
//
// - gzip: node:zlib.
// - zstd: node:zlib when it has zstd (Node >= 22.15, feature-detected), else zstd-napi's streaming
//   CompressStream/DecompressStream. Frames carry the content checksum flag.
// - lz4: barmants writes the LZ4 frame itself around blocks from lz4-napi's block compressor (see
//   LZ4_FRAME_HEADER); a stream is one frame, a large backup member a concatenation of frames (a
//   valid .lz4 file, the CLI decodes it). The decompressor is a streaming LZ4 frame parser written
//   here, so memory stays bounded by one block (<= 4 MiB) whatever produced the file (linked or
//   independent blocks, skippable frames); independent blocks are decoded by lz4-napi. It does not
//   verify the optional xxHash32 checksums: the checksum of the uncompressed content, recorded for
//   every stored file, is the integrity check.
import { Buffer } from 'node:buffer';
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import * as zlib from 'node:zlib';
import { createRequire } from 'node:module';
import type * as Lz4Napi from 'lz4-napi';
import type * as ZstdNapi from 'zstd-napi';
import type ZstdBinding from 'zstd-napi/binding.js';

// The native codec add-ons are loaded on first use, not at import: a command that never touches
// lz4 or zstd (get-wal of a gzip archive, list-backups, receive-wal with gzip) does not pay their
// start-up time and resident memory (about 9 MB and 30 ms together).
const requireNative = createRequire(import.meta.url);
let lz4Module: typeof Lz4Napi | undefined;
let zstdModule: typeof ZstdNapi | undefined;
let zstdBindingModule: typeof ZstdBinding | undefined;
const lz4 = (): typeof Lz4Napi => (lz4Module ??= requireNative('lz4-napi') as typeof Lz4Napi);
const zstd = (): typeof ZstdNapi => (zstdModule ??= requireNative('zstd-napi') as typeof ZstdNapi);
const zstdBinding = (): typeof ZstdBinding => (zstdBindingModule ??= requireNative('zstd-napi/binding.js') as typeof ZstdBinding);

export type Codec = 'none' | 'gzip' | 'lz4' | 'zstd';
export const CODECS: readonly Codec[] = ['none', 'gzip', 'lz4', 'zstd'];

export function isCodec(s: string): s is Codec {
  return (CODECS as readonly string[]).includes(s);
}

export function codecSuffix(codec: Codec): string {
  switch (codec) {
    case 'none': return '';
    case 'gzip': return '.gz';
    case 'lz4': return '.lz4';
    case 'zstd': return '.zst';
  }
}

/** The codec a stored file was written with, from its name's suffix. */
export function codecFromFileName(name: string): Codec {
  if (name.endsWith('.gz')) return 'gzip';
  if (name.endsWith('.lz4')) return 'lz4';
  if (name.endsWith('.zst')) return 'zstd';
  return 'none';
}

/** The name without its codec suffix (`000000010000000000000001.zst` → `000000010000000000000001`). */
export function stripCodecSuffix(name: string): string {
  const s = codecSuffix(codecFromFileName(name));
  return s ? name.slice(0, -s.length) : name;
}

// Node >= 22.15 ships zstd in zlib; @types/node 20 does not know it, hence the narrow view.
interface ZlibWithZstd {
  createZstdCompress?: (opts?: { params?: Record<number, number> }) => Transform;
  createZstdDecompress?: () => Transform;
  constants: { ZSTD_c_compressionLevel?: number; ZSTD_c_checksumFlag?: number };
}
const zlibZstd = zlib as unknown as ZlibWithZstd;

/** Whether zstd comes from node:zlib (true) or from zstd-napi (false). */
export const zstdFromZlib =
  typeof zlibZstd.createZstdCompress === 'function' && typeof zlibZstd.createZstdDecompress === 'function';

export const DEFAULT_LEVELS: Readonly<Record<Codec, number | undefined>> = {
  none: undefined,
  gzip: 6,
  lz4: undefined, // lz4-napi has no level knob
  zstd: 3,
};

export function createCompressor(codec: Codec, level?: number): Transform {
  switch (codec) {
    case 'none':
      return new PassThrough();
    case 'gzip':
      return zlib.createGzip({ level: level ?? DEFAULT_LEVELS.gzip! });
    case 'zstd': {
      const lvl = level ?? DEFAULT_LEVELS.zstd!;
      if (zstdFromZlib) {
        const c = zlibZstd.constants;
        const params: Record<number, number> = {};
        if (c.ZSTD_c_compressionLevel !== undefined) params[c.ZSTD_c_compressionLevel] = lvl;
        if (c.ZSTD_c_checksumFlag !== undefined) params[c.ZSTD_c_checksumFlag] = 1;
        return zlibZstd.createZstdCompress!({ params });
      }
      return new (zstd().CompressStream)({ compressionLevel: lvl, checksumFlag: true });
    }
    case 'lz4':
      return new Lz4FrameCompressor();
  }
}

export function createDecompressor(codec: Codec): Transform {
  switch (codec) {
    case 'none':
      return new PassThrough();
    case 'gzip':
      return zlib.createGunzip();
    case 'zstd':
      return zstdFromZlib ? zlibZstd.createZstdDecompress!() : new (zstd().DecompressStream)();
    case 'lz4':
      return new Lz4FrameDecompressor();
  }
}

// ---------------------------------------------------------------- lz4 compression

/**
 * The frames barmants writes: independent blocks of at most 64 KiB, no checksums (the checksum of
 * every stored file's content is the integrity check). The blocks come from lz4-napi's block
 * compressor (lz4_flex `compress_prepend_size`), not its frame encoder: on pgbench data the
 * block compressor runs at ~2 GB/s and the frame encoder at ~0.4 GB/s, which made an lz4 backup
 * cost more CPU than a gzip one's receive path. The frame around the blocks is LZ4's standard
 * format, so `lz4 -d` reads the files.
 */
const LZ4_BLOCK = 64 << 10;
/**
 * Magic 0x184D2204; FLG 0x60 (version 01, independent blocks, no block or content checksum, no
 * content size, no dictionary); BD 0x40 (max block size 64 KiB, LZ4's default: a decoder needs
 * no more per block); HC 0x82 = (xxh32(FLG BD) >> 8) & 0xFF.
 */
const LZ4_FRAME_HEADER = Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82]);
const LZ4_END_MARK = Buffer.alloc(4);
const LZ4_UNCOMPRESSED_BIT = 0x80000000;

/**
 * One frame block from lz4-napi's size-prefixed output (4-byte length, then the block): the
 * prefix is rewritten into the frame's block size word. Data that does not shrink is stored raw,
 * as the format asks.
 */
function lz4FrameBlock(prefixed: Buffer, raw: Uint8Array): Buffer[] {
  const compressedLen = prefixed.length - 4;
  if (compressedLen < raw.length) {
    prefixed.writeUInt32LE(compressedLen, 0);
    return [prefixed];
  }
  const word = Buffer.allocUnsafe(4);
  word.writeUInt32LE((raw.length | LZ4_UNCOMPRESSED_BIT) >>> 0, 0);
  return [word, Buffer.from(raw)]; // a copy: the caller may reuse its buffer once the stream moves on
}

/** A whole LZ4 frame of `data`, compressed on the calling thread. */
function lz4FrameSync(data: Buffer): Buffer {
  const parts: Buffer[] = [LZ4_FRAME_HEADER];
  for (let off = 0; off < data.length; off += LZ4_BLOCK) {
    const piece = data.subarray(off, off + LZ4_BLOCK);
    parts.push(...lz4FrameBlock(lz4().compressSync(piece), piece));
  }
  parts.push(LZ4_END_MARK);
  return Buffer.concat(parts);
}

/** One LZ4 frame for the whole stream, its blocks compressed on libuv's pool (the calling thread stays responsive). */
class Lz4FrameCompressor extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private started = false;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes < LZ4_BLOCK) return cb();
    this.emitBlocks(false).then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    this.emitBlocks(true).then(() => {
      this.push(LZ4_END_MARK);
      cb();
    }, cb);
  }

  private async emitBlocks(final: boolean): Promise<void> {
    if (!this.started) {
      this.push(LZ4_FRAME_HEADER);
      this.started = true;
    }
    let all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    while (all.length >= LZ4_BLOCK || (final && all.length > 0)) {
      const piece = all.subarray(0, Math.min(LZ4_BLOCK, all.length));
      all = all.subarray(piece.length);
      for (const b of lz4FrameBlock(await lz4().compress(piece), piece)) this.push(b);
    }
    if (all.length > 0) {
      this.pending.push(all);
      this.pendingBytes = all.length;
    }
  }
}

// ---------------------------------------------------------------- lz4 decompression

const LZ4_MAGIC = 0x184d2204;
const LZ4_LEGACY_MAGIC = 0x184c2102;
const LZ4_WINDOW = 64 * 1024;

/** A FIFO of byte chunks; only copies when a read spans chunks. */
class ByteQueue {
  private chunks: Buffer[] = [];
  length = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }

  /** The first n bytes as one buffer (caller checked length >= n), without consuming them. */
  peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    let k = 0;
    let have = 0;
    while (have < n) have += this.chunks[k++]!.length;
    const merged = Buffer.concat(this.chunks.slice(0, k), have);
    this.chunks.splice(0, k, merged);
    return merged.subarray(0, n);
  }

  consume(n: number): void {
    this.length -= n;
    while (n > 0) {
      const first = this.chunks[0]!;
      if (first.length <= n) {
        this.chunks.shift();
        n -= first.length;
      } else {
        this.chunks[0] = first.subarray(n);
        n = 0;
      }
    }
  }
}

type Lz4State =
  | { kind: 'magic' }
  | { kind: 'header' }
  | { kind: 'block' }
  | { kind: 'contentChecksum' }
  | { kind: 'skip'; remaining: number };

/** The lz4 decompressor as a Transform: an Lz4FrameReader fed from the stream. */
class Lz4FrameDecompressor extends Transform {
  private readonly reader = new Lz4FrameReader();

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.reader.feed(chunk, (b) => this.push(b));
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.reader.end();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}

/**
 * A streaming LZ4 frame parser: any number of frames (and skippable frames), linked or
 * independent blocks. Independent blocks, the common case (barmants' own frames, lz4's default),
 * are decoded by lz4-napi; linked blocks by lz4DecodeBlock below, which keeps the 64 KiB window.
 */
class Lz4FrameReader {
  private q = new ByteQueue();
  private state: Lz4State = { kind: 'magic' };
  private frames = 0;
  private blockMax = 0;
  private independent = true;
  private blockChecksum = false;
  private contentChecksum = false;
  private history: Buffer = Buffer.alloc(0);

  feed(chunk: Buffer, emit: (b: Buffer) => void): void {
    this.q.push(chunk);
    this.drain(emit);
  }

  /** Throws unless the input ended exactly after a complete frame. */
  end(): void {
    if (this.state.kind !== 'magic' || this.q.length !== 0) throw lz4Error('truncated lz4 stream');
    if (this.frames === 0) throw lz4Error('empty lz4 stream (no frame)');
  }

  private drain(emit: (b: Buffer) => void): void {
    for (;;) {
      const s = this.state;
      switch (s.kind) {
        case 'magic': {
          if (this.q.length < 4) return;
          const magic = this.q.peek(4).readUInt32LE(0);
          if (magic === LZ4_MAGIC) {
            if (this.q.length < 7) return;
            this.state = { kind: 'header' };
          } else if ((magic & 0xfffffff0) === 0x184d2a50) {
            if (this.q.length < 8) return;
            const size = this.q.peek(8).readUInt32LE(4);
            this.q.consume(8);
            this.state = { kind: 'skip', remaining: size };
          } else if (magic === LZ4_LEGACY_MAGIC) {
            throw lz4Error('legacy lz4 format (lz4 -l) is not supported');
          } else {
            throw lz4Error(`bad lz4 frame magic 0x${magic.toString(16)}`);
          }
          break;
        }
        case 'skip': {
          const n = Math.min(s.remaining, this.q.length);
          this.q.consume(n);
          s.remaining -= n;
          if (s.remaining > 0) return;
          this.state = { kind: 'magic' };
          this.frames++;
          break;
        }
        case 'header': {
          const flgBd = this.q.peek(6);
          const flg = flgBd[4]!;
          const bd = flgBd[5]!;
          if (flg >> 6 !== 1) throw lz4Error(`unsupported lz4 frame version ${flg >> 6}`);
          const headerLen = 4 + 2 + (flg & 0x08 ? 8 : 0) + (flg & 0x01 ? 4 : 0) + 1;
          if (this.q.length < headerLen) return;
          const sizeCode = (bd >> 4) & 7;
          if (sizeCode < 4) throw lz4Error(`bad lz4 block size code ${sizeCode}`);
          this.blockMax = 1 << (8 + 2 * sizeCode);
          this.independent = (flg & 0x20) !== 0;
          this.blockChecksum = (flg & 0x10) !== 0;
          this.contentChecksum = (flg & 0x04) !== 0;
          this.history = Buffer.alloc(0);
          this.q.consume(headerLen);
          this.state = { kind: 'block' };
          break;
        }
        case 'block': {
          if (this.q.length < 4) return;
          const word = this.q.peek(4).readUInt32LE(0);
          if (word === 0) {
            this.q.consume(4);
            this.state = this.contentChecksum ? { kind: 'contentChecksum' } : { kind: 'magic' };
            if (!this.contentChecksum) this.frames++;
            break;
          }
          const stored = (word & 0x80000000) !== 0;
          const len = word & 0x7fffffff;
          if (len > this.blockMax) throw lz4Error(`lz4 block of ${len} bytes exceeds the frame's maximum`);
          const total = 4 + len + (this.blockChecksum ? 4 : 0);
          if (this.q.length < total) return;
          const data = this.q.peek(4 + len).subarray(4);
          let out: Buffer;
          if (stored) {
            out = Buffer.from(data);
          } else if (this.independent) {
            out = lz4DecodeIndependent(data, this.blockMax);
          } else {
            const h = this.history.length;
            const dst = Buffer.allocUnsafe(h + this.blockMax);
            this.history.copy(dst, 0);
            out = dst.subarray(h, lz4DecodeBlock(data, dst, h));
          }
          this.q.consume(total);
          if (!this.independent) {
            const joined = this.history.length + out.length <= LZ4_WINDOW
              ? Buffer.concat([this.history, out])
              : out.length >= LZ4_WINDOW
                ? Buffer.from(out.subarray(out.length - LZ4_WINDOW))
                : Buffer.concat([this.history.subarray(this.history.length - (LZ4_WINDOW - out.length)), out]);
            this.history = joined;
          }
          if (out.length > 0) emit(out);
          break;
        }
        case 'contentChecksum': {
          if (this.q.length < 4) return;
          this.q.consume(4);
          this.frames++;
          this.state = { kind: 'magic' };
          break;
        }
      }
    }
  }
}

/**
 * Decodes one LZ4 block (`src`) into `dst` starting at `pos`; bytes before `pos` are the
 * dictionary (previous blocks of a linked frame). Returns the end position in `dst`.
 */
export function lz4DecodeBlock(src: Uint8Array, dst: Buffer, pos: number): number {
  const start = pos;
  const n = src.length;
  let i = 0;
  while (i < n) {
    const token = src[i++]!;
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (i >= n) throw lz4Error('corrupt lz4 block (literal length)');
        b = src[i++]!;
        lit += b;
      } while (b === 255);
    }
    if (i + lit > n || pos + lit > dst.length) throw lz4Error('corrupt lz4 block (literals overrun)');
    dst.set(src.subarray(i, i + lit), pos);
    i += lit;
    pos += lit;
    if (i >= n) break; // the last sequence has literals only
    if (i + 2 > n) throw lz4Error('corrupt lz4 block (offset)');
    const offset = src[i]! | (src[i + 1]! << 8);
    i += 2;
    if (offset === 0 || offset > pos) throw lz4Error('corrupt lz4 block (match offset)');
    let mlen = token & 15;
    if (mlen === 15) {
      let b: number;
      do {
        if (i >= n) throw lz4Error('corrupt lz4 block (match length)');
        b = src[i++]!;
        mlen += b;
      } while (b === 255);
    }
    mlen += 4;
    if (pos + mlen > dst.length) throw lz4Error('corrupt lz4 block (match overrun)');
    let from = pos - offset;
    if (offset >= mlen) {
      dst.copyWithin(pos, from, from + mlen);
      pos += mlen;
    } else if (offset >= 8) {
      // Overlapping match: copy in offset-sized strides, each one reads only bytes already written.
      const end = pos + mlen;
      while (pos < end) {
        const step = Math.min(offset, end - pos);
        dst.copyWithin(pos, from, from + step);
        pos += step;
        from += step;
      }
    } else {
      const end = pos + mlen;
      while (pos < end) dst[pos++] = dst[from++]!;
    }
  }
  if (pos - start < 0) throw lz4Error('corrupt lz4 block');
  return pos;
}

/** One independent block through lz4-napi (lz4_flex `decompress_size_prepended`, given the frame's maximum). */
function lz4DecodeIndependent(block: Uint8Array, blockMax: number): Buffer {
  const prefixed = Buffer.allocUnsafe(4 + block.length);
  prefixed.writeUInt32LE(blockMax, 0);
  prefixed.set(block, 4);
  try {
    return lz4().uncompressSync(prefixed);
  } catch (e) {
    throw lz4Error(`corrupt lz4 block (${(e as Error).message})`);
  }
}

function lz4Error(message: string): Error {
  return Object.assign(new Error(message), { code: 'ERR_LZ4_CORRUPT' });
}

const zstdCompressors = new Map<number, ZstdNapi.Compressor>();

/**
 * Compresses a whole small buffer in one call, in the same formats as createCompressor (a
 * complete gzip member, zstd frame or LZ4 frame). For the thousands of small files of a cluster,
 * a stream pipeline and a fresh compression context per file cost more than the compression.
 * zstd contexts are reused per level (one per thread: this runs in the store workers).
 */
export function compressWhole(codec: Codec, data: Buffer, level?: number): Buffer {
  switch (codec) {
    case 'none':
      return data;
    case 'gzip':
      return zlib.gzipSync(data, { level: level ?? DEFAULT_LEVELS.gzip! });
    case 'lz4':
      return lz4FrameSync(data);
    case 'zstd': {
      const lvl = level ?? DEFAULT_LEVELS.zstd!;
      let c = zstdCompressors.get(lvl);
      if (!c) {
        c = new (zstd().Compressor)();
        c.setParameters({ compressionLevel: lvl, checksumFlag: true });
        zstdCompressors.set(lvl, c);
      }
      return c.compress(data);
    }
  }
}

/**
 * Decompresses a whole small stored file held in memory (the counterpart of compressWhole, for
 * files stored in one frame). Larger files go through createDecompressor.
 */
export function decompressWhole(codec: Codec, data: Buffer): Buffer {
  switch (codec) {
    case 'none':
      return data;
    case 'gzip':
      return zlib.gunzipSync(data);
    case 'lz4': {
      const out: Buffer[] = [];
      const reader = new Lz4FrameReader();
      reader.feed(data, (b) => out.push(b));
      reader.end();
      return out.length === 1 ? out[0]! : Buffer.concat(out);
    }
    case 'zstd':
      return zstd().decompress(data);
  }
}

/**
 * Decompresses an LZ4 stream (any number of frames) read through `read`, with no stream
 * machinery: `onData` gets each decoded block. The read buffer is fresh per read (the frame parser
 * keeps a partial block across reads). A large member restored through the Transform stream and
 * one asynchronous write per 64 KiB block cost seconds of CPU per GB; this loop decodes ~2 GB/s.
 */
export function lz4DecompressSync(read: (buf: Buffer) => number, onData: (piece: Buffer) => void): void {
  const reader = new Lz4FrameReader();
  for (;;) {
    const src = Buffer.allocUnsafe(1 << 20);
    const n = read(src);
    if (n === 0) break;
    reader.feed(src.subarray(0, n), onData);
  }
  reader.end();
}

/**
 * Decompresses a zstd stream (any number of frames) read through `read` into a reusable buffer,
 * with no stream machinery: `onData` gets each piece as a view valid during the call. A large
 * stored member is a frame per MiB; the Transform stream allocated and queued a 128 KiB buffer per
 * piece and cost ten times the decompression itself (45 MB: 566 ms, mostly in stream plumbing).
 */
export function zstdDecompressSync(read: (buf: Buffer) => number, onData: (piece: Buffer) => void): void {
  const dctx = new (zstdBinding().DCtx)();
  const src = Buffer.allocUnsafe(1 << 20);
  const dst = Buffer.allocUnsafe(1 << 20);
  let inFrame = false;
  for (;;) {
    const n = read(src);
    if (n === 0) break;
    let input = src.subarray(0, n);
    for (;;) {
      const [ret, produced, consumed] = dctx.decompressStream(dst, input);
      if (produced > 0) onData(dst.subarray(0, produced));
      input = input.subarray(consumed);
      // A call that neither read nor wrote (after a frame ended exactly at a full buffer) returns
      // the next frame's header size, not "inside a frame": it says nothing about completeness.
      if (produced > 0 || consumed > 0) inFrame = ret !== 0;
      if (input.length === 0 && produced < dst.length) break;
    }
  }
  if (inFrame) throw new Error('truncated zstd stream: the last frame is incomplete');
}
