/*
 * Restoring one stored member into its target file: read, decompress, check size and checksum,
 * write (O_EXCL|O_NOFOLLOW: never through a planted symlink). Plain data in, plain data out, so
 * that the store workers can run it (recovery uses both cores) as well as the main thread.
 */
import { closeSync, constants, futimesSync, openSync, readFileSync, readSync } from 'node:fs';
import { chmod, lstat, open, rm, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { BarmantsError } from '../errors/index.js';
import { CODECS, codecSuffix, createDecompressor, decompressWhole, lz4DecompressSync, zstdDecompressSync, type Codec } from '../repository/codec.js';
import { createContentHash, type ContentAlgorithm } from '../repository/checksum.js';
import { writeAll, writeAllSync, Writeback } from '../repository/durable.js';
import { fileChecksum, type FileEntry } from '../backup/info.js';

type BackupMember = FileEntry;

/** Written first, removed last: a directory holding it is not a usable restore. */
export const INCOMPLETE_MARKER = 'barmants_recovery_INCOMPLETE';

/** One file to restore: where it is stored, where it goes, how. */
export interface RestoreFileJob {
  backupDir: string;
  codec: Codec;
  member: BackupMember;
  /** the file to create (its directory exists and was checked to be a real directory) */
  target: string;
  /** reuse the target when identical, replace it otherwise */
  delta: boolean;
}

/** Where a member's bytes are stored inside the backup directory. */
export function storedMemberPath(backupDir: string, m: Pick<BackupMember, 'ts' | 'path'>, codec: Codec): string {
  const root = m.ts === null ? join(backupDir, 'data') : join(backupDir, 'tablespaces', String(m.ts));
  return join(root, m.path) + codecSuffix(codec);
}

export function describeMember(m: Pick<BackupMember, 'ts' | 'path'>): string {
  return m.ts === null ? m.path : `${m.path} (tablespace ${m.ts})`;
}

/**
 * Opens the decompressed content of a stored member. A file hard-linked from an earlier backup
 * written with another codec still opens: the other suffixes are tried when the expected is absent.
 */
export async function openStoredMember(backupDir: string, m: BackupMember, codec: Codec): Promise<{ path: string; stream: Readable; codec: Codec }> {
  const order = [codec, ...CODECS.filter((c) => c !== codec)];
  for (const c of order) {
    const path = storedMemberPath(backupDir, m, c);
    try {
      const fh = await open(path, constants.O_RDONLY);
      return { path, stream: fh.createReadStream({ highWaterMark: 1 << 20 }), codec: c };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`cannot read stored file ${path}`, e);
    }
  }
  throw new BarmantsError('integrity', `stored file for ${describeMember(m)} is missing from the backup (${storedMemberPath(backupDir, m, codec)})`, {
    hint: 'the backup is damaged: run `barmants verify-backup` and restore another backup',
  });
}

export function ioError(message: string, cause: unknown): BarmantsError {
  return new BarmantsError('io', `${message}: ${(cause as Error).message}`, { cause });
}

function integrityError(m: BackupMember, storedPath: string, why: string): BarmantsError {
  return new BarmantsError('integrity', `${describeMember(m)}: ${why} (stored as ${storedPath}); the restore stopped`, {
    hint: `the destination is incomplete (marked by ${INCOMPLETE_MARKER}); run \`barmants verify-backup\`, then restore another backup or rerun with --delta once fixed`,
  });
}

/** A member's checksum, which the file list must give (readFileList checks it). */
export function memberChecksum(m: BackupMember): { alg: ContentAlgorithm; hex: string } {
  const sum = fileChecksum(m);
  if (!sum) throw new BarmantsError('integrity', `${describeMember(m)} has no checksum in the file list: it cannot be verified`);
  return sum;
}

type Checksum = ReturnType<typeof memberChecksum>;

/** Fails the restore when `digest` (computed in `want.alg`) is not the file list's. */
function checkDigest(m: BackupMember, storedPath: string, want: Checksum, digest: string): void {
  if (digest !== want.hex) throw integrityError(m, storedPath, `checksum mismatch: ${want.alg} ${digest}, the file list says ${want.hex}`);
}

async function checksumOfFile(path: string, alg: ContentAlgorithm): Promise<string> {
  const h = createContentHash(alg);
  // O_NOFOLLOW: delta compares only regular files that are really in DEST.
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    for await (const chunk of fh.createReadStream({ highWaterMark: 1 << 20, autoClose: false })) h.update(chunk as Buffer);
  } finally {
    await fh.close();
  }
  return h.digest();
}

export async function restoreFile(job: RestoreFileJob, onBytes: (n: number) => void = () => undefined): Promise<'written' | 'unchanged'> {
  const { member: m, target } = job;
  const opts = job;
  const want = memberChecksum(m);
  if (opts.delta) {
    let st;
    try {
      st = await lstat(target);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (st !== undefined) {
      if (st.isFile() && st.size === m.size && (await checksumOfFile(target, want.alg)) === want.hex) {
        if ((st.mode & 0o777) !== 0o600) await chmod(target, 0o600);
        return 'unchanged';
      }
      await rm(target, { recursive: true, force: true });
    }
  }
  if (m.size <= SMALL_MEMBER) return restoreSmallFile(job, m, want, target, onBytes);
  if (isSyncCodec(opts.codec)) {
    // Synchronous loops for these; gzip uses the stream path below.
    const stored = storedMemberPath(opts.backupDir, m, opts.codec);
    let fd: number | null = null;
    try {
      fd = openSync(stored, constants.O_RDONLY);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`cannot read stored file ${stored}`, e);
    }
    if (fd !== null) return copyDecodedFile(fd, stored, opts.codec, m, want, target, onBytes);
  }
  const src = await openStoredMember(opts.backupDir, m, opts.codec);
  let out: FileHandle;
  try {
    // O_EXCL|O_NOFOLLOW: a symlink (or anything) planted at the target makes this fail, never redirect.
    out = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    src.stream.destroy();
    throw ioError(`cannot create ${target}`, e);
  }
  const hash = createContentHash(want.alg);
  let size = 0;
  try {
    const sink = async (source: AsyncIterable<Buffer>): Promise<void> => {
      for await (const chunk of source) {
        hash.update(chunk);
        size += chunk.length;
        await writeAll(out, chunk);
        onBytes(chunk.length);
      }
    };
    try {
      if (src.codec === 'none') await pipeline(src.stream, sink);
      else await pipeline(src.stream, createDecompressor(src.codec), sink);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code && /^E[A-Z]+$/.test((e as NodeJS.ErrnoException).code!) && (e as NodeJS.ErrnoException).code !== 'ERR_LZ4_CORRUPT') {
        throw ioError(`cannot restore ${describeMember(m)} into ${target}`, e);
      }
      throw integrityError(m, src.path, `the stored file cannot be decompressed: ${(e as Error).message}`);
    }
    const digest = hash.digest();
    if (size !== m.size) throw integrityError(m, src.path, `size mismatch: ${size} bytes restored, the file list says ${m.size}`);
    checkDigest(m, src.path, want, digest);
    if (m.mtime !== null && m.mtime !== undefined) await out.utimes(m.mtime, m.mtime);
  } finally {
    await out.close();
  }
  return 'written';
}

/** Members up to this size (stored in one frame) are restored whole, with synchronous syscalls. */
export const SMALL_MEMBER = 1 << 20;

/**
 * Most members of a cluster are small: read, decompress, verify and write each in one go. A
 * stream pipeline per 8 KiB file cost more than the copy itself. The same checks as the streaming
 * path: O_EXCL|O_NOFOLLOW on the target, size and checksum before the file is considered restored.
 */
function restoreSmallFile(opts: Pick<RestoreFileJob, 'backupDir' | 'codec'>, m: BackupMember, want: Checksum, target: string, onBytes: (n: number) => void): 'written' {
  const order = [opts.codec, ...CODECS.filter((c) => c !== opts.codec)];
  let stored: Buffer | null = null;
  let codec: Codec = opts.codec;
  let path = storedMemberPath(opts.backupDir, m, opts.codec);
  for (const c of order) {
    const p = storedMemberPath(opts.backupDir, m, c);
    try {
      stored = readFileSync(p);
      codec = c;
      path = p;
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`cannot read stored file ${p}`, e);
    }
  }
  if (stored === null) {
    throw new BarmantsError('integrity', `stored file for ${describeMember(m)} is missing from the backup (${path})`, {
      hint: 'the backup is damaged: run `barmants verify-backup` and restore another backup',
    });
  }
  let data: Buffer;
  try {
    data = decompressWhole(codec, stored);
  } catch (e) {
    throw integrityError(m, path, `the stored file cannot be decompressed: ${(e as Error).message}`);
  }
  if (data.length !== m.size) throw integrityError(m, path, `size mismatch: ${data.length} bytes restored, the file list says ${m.size}`);
  const hash = createContentHash(want.alg);
  hash.update(data);
  checkDigest(m, path, want, hash.digest());
  let fd: number;
  try {
    fd = openSync(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    throw ioError(`cannot create ${target}`, e);
  }
  try {
    writeAllSync(fd, data);
    if (m.mtime !== null && m.mtime !== undefined) futimesSync(fd, m.mtime, m.mtime);
  } catch (e) {
    throw ioError(`cannot restore ${describeMember(m)} into ${target}`, e);
  } finally {
    closeSync(fd);
  }
  onBytes(data.length);
  return 'written';
}

export type SyncCodec = 'none' | 'zstd' | 'lz4';

/** The codecs decodeFileSync reads (gzip goes through node:zlib's streams). */
export function isSyncCodec(codec: Codec): codec is SyncCodec {
  return codec !== 'gzip';
}

/**
 * Copies a stored file into `fd` with synchronous syscalls, decompressing zstd or lz4 on the way:
 * read 1 MiB at a time, hash, write (no stream machinery between page-cache copies). Returns the size
 * and checksum (in `o.alg`) of what was written; `limit` stops a file that is longer than it should be.
 */
export function decodeFileSync(
  srcFd: number,
  codec: SyncCodec,
  fd: number,
  o: { alg: ContentAlgorithm; limit: number | null; onBytes?: (n: number) => void; readError: (e: unknown) => Error; tooLong: () => Error; corrupt: (e: Error) => Error },
): { size: number; checksum: string } {
  const hash = createContentHash(o.alg);
  let size = 0;
  let readPos = 0;
  const read = (buf: Buffer): number => {
    try {
      const n = readSync(srcFd, buf, 0, buf.length, readPos);
      readPos += n;
      return n;
    } catch (e) {
      throw o.readError(e);
    }
  };
  const write = (piece: Buffer): void => {
    if (o.limit !== null && size + piece.length > o.limit) throw o.tooLong();
    hash.update(piece);
    writeAllSync(fd, piece, size);
    size += piece.length;
    o.onBytes?.(piece.length);
  };
  if (codec === 'none') {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let n = read(buf); n > 0; n = read(buf)) write(buf.subarray(0, n));
  } else {
    try {
      (codec === 'zstd' ? zstdDecompressSync : lz4DecompressSync)(read, write);
    } catch (e) {
      if (e instanceof BarmantsError) throw e;
      throw o.corrupt(e as Error);
    }
  }
  return { size, checksum: hash.digest() };
}

/**
 * A stored member restored with decodeFileSync, checked against the file list, its write-back
 * started while it is written (Writeback). Takes ownership of `srcFd`.
 */
async function copyDecodedFile(srcFd: number, storedPath: string, codec: SyncCodec, m: BackupMember, want: Checksum, target: string, onBytes: (n: number) => void): Promise<'written'> {
  let fd: number;
  try {
    fd = openSync(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    closeSync(srcFd);
    throw ioError(`cannot create ${target}`, e);
  }
  const writeback = new Writeback(fd);
  const written = (n: number): void => {
    onBytes(n);
    writeback.wrote(n);
  };
  try {
    const { size, checksum } = decodeFileSync(srcFd, codec, fd, {
      alg: want.alg,
      limit: m.size,
      onBytes: written,
      readError: (e) => ioError(`cannot read stored file ${storedPath}`, e),
      tooLong: () => integrityError(m, storedPath, `size mismatch: more than the ${m.size} bytes the file list says`),
      corrupt: (e) => integrityError(m, storedPath, `the stored file cannot be decompressed: ${e.message}`),
    });
    if (size !== m.size) throw integrityError(m, storedPath, `size mismatch: ${size} bytes restored, the file list says ${m.size}`);
    checkDigest(m, storedPath, want, checksum);
    if (m.mtime !== null && m.mtime !== undefined) futimesSync(fd, m.mtime, m.mtime);
    await writeback.settle().catch((e: unknown) => {
      throw ioError(`cannot write ${target} to disk`, e);
    });
  } finally {
    // Never close while a write-back may still use the descriptor (its number could be reused).
    await writeback.settle().catch(() => undefined);
    closeSync(fd);
    closeSync(srcFd);
  }
  return 'written';
}
