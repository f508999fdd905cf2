/*
 * The restore engine: turns a stored backup (docs/REPOSITORY.md) into a data directory (and its
 * tablespace directories), decompressing and checking the SHA-256 of every file as it is written.
 * Writes never go through a symlink: directories are created and lstat-checked before any file,
 * files are opened O_EXCL|O_NOFOLLOW, and symlinks are created last.
 */
import { closeSync, constants, futimesSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { lstat, mkdir, open, readdir, readlink, rm, symlink, unlink, chmod, type FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { BarmantsError } from '../errors/index.js';
import { codecSuffix, createDecompressor, decompressWhole, writeFileDurable, fsyncDir, CODECS, type Codec } from '../repository/index.js';
import type { BackupMember } from './backup-files.js';

/** Written first, removed last: a directory holding it is not a usable restore. */
export const INCOMPLETE_MARKER = 'barmants_recovery_INCOMPLETE';

/** Files of the source cluster that must never reach a restored directory. */
const NEVER_RESTORED = new Set(['postmaster.pid', 'postmaster.opts', INCOMPLETE_MARKER, 'recovery.signal', 'standby.signal']);

export interface RestoreProgress {
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
}

export interface RestoreOptions {
  backupDir: string;
  codec: Codec;
  members: readonly BackupMember[];
  /** The data directory to fill; must exist (created by the caller after its checks). */
  dest: string;
  /** Tablespace OID → the directory its files go to. Every OID used by a member must be here. */
  tablespaceLocations: ReadonlyMap<number, string>;
  /** Files restored at once (bounded concurrency). */
  jobs: number;
  /** Reuse what DEST already holds: rewrite only differing files, remove what the backup lacks. */
  delta: boolean;
  onProgress?: (p: RestoreProgress) => void;
  signal?: AbortSignal;
}

export interface RestoreSummary {
  files: number;
  bytes: number;
  dirs: number;
  symlinks: number;
  /** delta: files already identical, left untouched */
  unchanged: number;
  /** delta: paths removed because the backup lacks them */
  removed: number;
  seconds: number;
}

/** Where a member's bytes are stored inside the backup directory. */
export function storedMemberPath(backupDir: string, m: Pick<BackupMember, 'ts' | 'path'>, codec: Codec): string {
  const root = m.ts === null ? join(backupDir, 'data') : join(backupDir, 'tablespaces', String(m.ts));
  return join(root, m.path) + codecSuffix(codec);
}

/** Whether a member belongs in a restored directory at all. */
export function isRestoredMember(m: Pick<BackupMember, 'ts' | 'path'>): boolean {
  return !(m.ts === null && NEVER_RESTORED.has(m.path));
}

export async function markIncomplete(dest: string, text: string): Promise<void> {
  await writeFileDurable(join(dest, INCOMPLETE_MARKER), text);
}

export async function clearIncomplete(dest: string): Promise<void> {
  await unlink(join(dest, INCOMPLETE_MARKER)).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
  await fsyncDir(dest);
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

export function describeMember(m: Pick<BackupMember, 'ts' | 'path'>): string {
  return m.ts === null ? m.path : `${m.path} (tablespace ${m.ts})`;
}

function ioError(message: string, cause: unknown): BarmantsError {
  return new BarmantsError('io', `${message}: ${(cause as Error).message}`, { cause });
}

function integrityError(m: BackupMember, storedPath: string, why: string): BarmantsError {
  return new BarmantsError('integrity', `${describeMember(m)}: ${why} (stored as ${storedPath}); the restore stopped`, {
    hint: `the destination is incomplete (marked by ${INCOMPLETE_MARKER}); run \`barmants verify-backup\`, then restore another backup or rerun with --delta once fixed`,
  });
}

function rootOf(opts: RestoreOptions, ts: number | null): string {
  if (ts === null) return opts.dest;
  const loc = opts.tablespaceLocations.get(ts);
  if (loc === undefined) throw new BarmantsError('integrity', `the file list names tablespace ${ts}, which backup.info does not list`);
  return loc;
}

/** Checks that `path` is a real directory (not a symlink to one), creating it (0700) when absent. */
export async function ensureRealDir(path: string, delta: boolean): Promise<'created' | 'kept'> {
  try {
    await mkdir(path, { mode: 0o700 });
    const st = await lstat(path);
    if (!st.isDirectory()) throw new BarmantsError('unsafe', `${path} is not a directory after creating it: refusing to write into it`);
    if ((st.mode & 0o777) !== 0o700) await chmod(path, 0o700); // umask may have been stricter than us, never looser
    return 'created';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
      if (e instanceof BarmantsError) throw e;
      throw ioError(`cannot create directory ${path}`, e);
    }
  }
  const st = await lstat(path);
  if (st.isDirectory()) {
    if ((st.mode & 0o777) !== 0o700) await chmod(path, 0o700);
    return 'kept';
  }
  if (!delta) throw new BarmantsError('unsafe', `${path} already exists and is not a directory: refusing to write through it`);
  // delta: whatever sits where the backup has a directory (a file, a symlink) is replaced, never followed.
  await unlink(path);
  await mkdir(path, { mode: 0o700 });
  return 'created';
}

function parentsOf(path: string): string[] {
  const parts = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join('/'));
  return out;
}

async function sha256OfFile(path: string): Promise<string> {
  const h = createHash('sha256');
  // O_NOFOLLOW: delta compares only regular files that are really in DEST.
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    for await (const chunk of fh.createReadStream({ highWaterMark: 1 << 20, autoClose: false })) h.update(chunk as Buffer);
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

/** Restores every member into DEST and the tablespace directories. Throws on the first failure. */
export async function restoreMembers(opts: RestoreOptions): Promise<RestoreSummary> {
  const started = process.hrtime.bigint();
  const members = opts.members.filter(isRestoredMember);
  const files = members.filter((m) => m.type === 'file');
  const progress: RestoreProgress = {
    bytesDone: 0,
    bytesTotal: files.reduce((s, m) => s + m.size, 0),
    filesDone: 0,
    filesTotal: files.length,
  };
  const summary: RestoreSummary = { files: 0, bytes: 0, dirs: 0, symlinks: 0, unchanged: 0, removed: 0, seconds: 0 };
  let lastReport = 0;
  const report = (force = false): void => {
    if (!opts.onProgress) return;
    const now = Date.now();
    if (!force && now - lastReport < 100) return;
    lastReport = now;
    opts.onProgress({ ...progress });
  };

  // 1. Directories, parents first, each one lstat-checked: later writes only go through real dirs.
  const dirSets = new Map<number | null, Set<string>>();
  const addDir = (ts: number | null, p: string): void => {
    let s = dirSets.get(ts);
    if (!s) dirSets.set(ts, (s = new Set()));
    s.add(p);
  };
  for (const m of members) {
    for (const p of parentsOf(m.path)) addDir(m.ts, p);
    if (m.type === 'dir') addDir(m.ts, m.path);
  }
  for (const root of [opts.dest, ...opts.tablespaceLocations.values()]) await ensureRealDir(root, opts.delta);
  for (const [ts, set] of dirSets) {
    const root = rootOf(opts, ts);
    const sorted = [...set].sort((a, b) => a.split('/').length - b.split('/').length || (a < b ? -1 : 1));
    for (const rel of sorted) {
      if ((await ensureRealDir(join(root, rel), opts.delta)) === 'created') summary.dirs++;
    }
  }

  // 2. delta: remove what the backup lacks (never following symlinks), before writing anything.
  if (opts.delta) {
    const keep = new Map<number | null, Map<string, BackupMember | 'dir'>>();
    for (const m of members) {
      let k = keep.get(m.ts);
      if (!k) keep.set(m.ts, (k = new Map()));
      k.set(m.path, m);
    }
    for (const [ts, set] of dirSets) for (const d of set) if (!keep.get(ts)?.has(d)) keep.get(ts)?.set(d, 'dir');
    for (const ts of [null, ...opts.tablespaceLocations.keys()]) {
      summary.removed += await pruneExtra(rootOf(opts, ts), '', keep.get(ts) ?? new Map(), ts === null);
    }
  }

  // 3. Files, `jobs` at a time.
  const jobs = Math.max(1, Math.floor(opts.jobs));
  let next = 0;
  let failure: unknown = null;
  const worker = async (): Promise<void> => {
    while (failure === null && next < files.length) {
      if (opts.signal?.aborted) {
        failure = new BarmantsError('io', 'restore interrupted', { hint: `the destination is incomplete (marked by ${INCOMPLETE_MARKER}); rerun with --delta to finish it` });
        return;
      }
      const m = files[next++]!;
      try {
        const r = await restoreFile(opts, m, (n) => {
          progress.bytesDone += n;
          report();
        });
        if (r === 'unchanged') {
          summary.unchanged++;
          progress.bytesDone += m.size;
        } else {
          summary.files++;
          summary.bytes += m.size;
        }
        progress.filesDone++;
        report();
      } catch (e) {
        if (failure === null) failure = e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, Math.max(1, files.length)) }, worker));
  if (failure !== null) throw failure;

  // 4. Symlinks last: nothing is written after them, so nothing is written through them.
  for (const m of members) {
    if (m.type !== 'symlink') continue;
    if (m.link === null || m.link === '') throw new BarmantsError('integrity', `symlink ${describeMember(m)} has no target in the file list`);
    await placeSymlink(join(rootOf(opts, m.ts), m.path), m.link, opts.delta);
    summary.symlinks++;
  }
  report(true);
  summary.seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return summary;
}

/** Creates (or, with delta, replaces) a symlink; never touches what an existing link points to. */
export async function placeSymlink(path: string, target: string, delta: boolean): Promise<void> {
  try {
    const st = await lstat(path);
    if (st.isSymbolicLink() && (await readlink(path)) === target) return;
    if (!delta && !st.isSymbolicLink()) throw new BarmantsError('unsafe', `${path} already exists: refusing to replace it with a symlink`);
    await rm(path, { recursive: true, force: true }); // rm does not follow a symlink: it removes the link
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  await symlink(target, path);
}

/** Removes entries under root/rel that are not in `keep`; returns how many were removed. */
async function pruneExtra(root: string, rel: string, keep: Map<string, BackupMember | 'dir'>, isMain: boolean): Promise<number> {
  let removed = 0;
  let entries;
  try {
    entries = await readdir(join(root, rel), { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw e;
  }
  for (const ent of entries) {
    const p = rel === '' ? ent.name : `${rel}/${ent.name}`;
    if (isMain && p === INCOMPLETE_MARKER) continue;
    const want = keep.get(p);
    const full = join(root, p);
    if (want === undefined) {
      await rm(full, { recursive: true, force: true });
      removed++;
      continue;
    }
    const isDir = ent.isDirectory() && !ent.isSymbolicLink();
    if (want === 'dir' || want.type === 'dir') {
      if (isDir) removed += await pruneExtra(root, p, keep, isMain);
    } else if (isDir) {
      // the backup has a file or symlink here: the directory must go
      await rm(full, { recursive: true, force: true });
      removed++;
    }
  }
  return removed;
}

async function restoreFile(opts: RestoreOptions, m: BackupMember, onBytes: (n: number) => void): Promise<'written' | 'unchanged'> {
  const target = join(rootOf(opts, m.ts), m.path);
  if (opts.delta) {
    let st;
    try {
      st = await lstat(target);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (st !== undefined) {
      if (st.isFile() && st.size === m.size && (await sha256OfFile(target)) === m.sha256) {
        if ((st.mode & 0o777) !== 0o600) await chmod(target, 0o600);
        return 'unchanged';
      }
      await rm(target, { recursive: true, force: true });
    }
  }
  if (m.size <= SMALL_MEMBER) return restoreSmallFile(opts, m, target, onBytes);
  if (opts.codec === 'none') {
    const plain = storedMemberPath(opts.backupDir, m, 'none');
    let fd: number | null = null;
    try {
      fd = openSync(plain, constants.O_RDONLY);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`cannot read stored file ${plain}`, e);
    }
    if (fd !== null) return copyPlainFile(fd, plain, m, target, onBytes);
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
  const hash = createHash('sha256');
  let size = 0;
  try {
    const sink = async (source: AsyncIterable<Buffer>): Promise<void> => {
      for await (const chunk of source) {
        hash.update(chunk);
        size += chunk.length;
        let off = 0;
        while (off < chunk.length) off += (await out.write(chunk, off, chunk.length - off)).bytesWritten;
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
    const digest = hash.digest('hex');
    if (size !== m.size) throw integrityError(m, src.path, `size mismatch: ${size} bytes restored, the file list says ${m.size}`);
    if (digest !== m.sha256) throw integrityError(m, src.path, `checksum mismatch: sha256 ${digest}, the file list says ${m.sha256}`);
    if (m.mtime !== null && m.mtime !== undefined) await out.utimes(m.mtime, m.mtime);
  } finally {
    await out.close();
  }
  return 'written';
}

/** Members up to this size (stored in one frame) are restored whole, with synchronous syscalls. */
const SMALL_MEMBER = 1 << 20;

/**
 * Most members of a cluster are small: read, decompress, verify and write each in one go. A
 * stream pipeline per 8 KiB file cost more than the copy itself. The same checks as the streaming
 * path: O_EXCL|O_NOFOLLOW on the target, size and sha256 before the file is considered restored.
 */
function restoreSmallFile(opts: RestoreOptions, m: BackupMember, target: string, onBytes: (n: number) => void): 'written' {
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
  const digest = createHash('sha256').update(data).digest('hex');
  if (digest !== m.sha256) throw integrityError(m, path, `checksum mismatch: sha256 ${digest}, the file list says ${m.sha256}`);
  let fd: number;
  try {
    fd = openSync(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    throw ioError(`cannot create ${target}`, e);
  }
  try {
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    if (m.mtime !== null && m.mtime !== undefined) futimesSync(fd, m.mtime, m.mtime);
  } catch (e) {
    throw ioError(`cannot restore ${describeMember(m)} into ${target}`, e);
  } finally {
    closeSync(fd);
  }
  onBytes(data.length);
  return 'written';
}

/**
 * An uncompressed stored member: read, hash and write 1 MiB at a time with synchronous syscalls
 * (no stream machinery between two page-cache copies). Takes ownership of `srcFd`.
 */
function copyPlainFile(srcFd: number, storedPath: string, m: BackupMember, target: string, onBytes: (n: number) => void): 'written' {
  let fd: number;
  try {
    fd = openSync(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    closeSync(srcFd);
    throw ioError(`cannot create ${target}`, e);
  }
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  let size = 0;
  try {
    for (;;) {
      let n: number;
      try {
        n = readSync(srcFd, buf, 0, buf.length, size);
      } catch (e) {
        throw ioError(`cannot read stored file ${storedPath}`, e);
      }
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      let off = 0;
      while (off < n) off += writeSync(fd, buf, off, n - off, size + off);
      size += n;
      onBytes(n);
    }
    if (size !== m.size) throw integrityError(m, storedPath, `size mismatch: ${size} bytes restored, the file list says ${m.size}`);
    const digest = hash.digest('hex');
    if (digest !== m.sha256) throw integrityError(m, storedPath, `checksum mismatch: sha256 ${digest}, the file list says ${m.sha256}`);
    if (m.mtime !== null && m.mtime !== undefined) futimesSync(fd, m.mtime, m.mtime);
  } finally {
    closeSync(fd);
    closeSync(srcFd);
  }
  return 'written';
}
