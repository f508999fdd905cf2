/*
 * The restore engine: turns a stored backup (docs/REPOSITORY.md) into a data directory (and its
 * tablespace directories), decompressing and checking the checksum of every file as it is written.
 * Writes never go through a symlink: directories are created and lstat-checked before any file,
 * files are opened O_EXCL|O_NOFOLLOW, and symlinks are created last.
 */
import { availableParallelism } from 'node:os';
import { lstat, mkdir, readdir, readlink, rm, symlink, unlink, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { BarmantsError } from '../errors/index.js';
import type { Codec } from '../repository/codec.js';
import { writeFileDurable, fsyncDir } from '../repository/durable.js';
import { StoreWorkerPool } from '../repository/store.js';
import type { BackupMember } from './backup-files.js';
import { describeMember, INCOMPLETE_MARKER, ioError, SMALL_MEMBER, type RestoreFileJob } from './restore-file.js';

export { INCOMPLETE_MARKER, storedMemberPath, describeMember, memberChecksum, openStoredMember } from './restore-file.js';

const RESTORE_BATCH_FILES = 128;
const RESTORE_BATCH_BYTES = 8 << 20;

/** Files of the source cluster that must never reach a restored directory. */
const NEVER_RESTORED = new Set(['postmaster.pid', 'postmaster.opts', INCOMPLETE_MARKER, 'recovery.signal', 'standby.signal']);

export interface RestoreProgress {
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
}

/** The store workers a restore with `jobs` uses: one per core at most. */
export function restorePool(jobs: number): StoreWorkerPool {
  return new StoreWorkerPool(Math.min(Math.max(1, Math.floor(jobs)), availableParallelism()));
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
  /**
   * Workers started earlier by the caller (see restorePool), which keeps them; without one, a pool
   * is started and closed here.
   */
  pool?: StoreWorkerPool;
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

  // 3. Files, in the store workers (read, decompress, checksum, write: CPU work on every core),
  //    small ones in batches so that per-file messaging does not dominate.
  const pool = opts.pool ?? restorePool(opts.jobs);
  const batches: BackupMember[][] = [];
  let batch: BackupMember[] = [];
  let batchBytes = 0;
  for (const m of files) {
    if (m.size > SMALL_MEMBER) {
      batches.push([m]);
      continue;
    }
    batch.push(m);
    batchBytes += m.size;
    if (batch.length >= RESTORE_BATCH_FILES || batchBytes >= RESTORE_BATCH_BYTES) {
      batches.push(batch);
      batch = [];
      batchBytes = 0;
    }
  }
  if (batch.length) batches.push(batch);
  let next = 0;
  let failure: unknown = null;
  const lane = async (): Promise<void> => {
    while (failure === null && next < batches.length) {
      if (opts.signal?.aborted) {
        failure = new BarmantsError('io', 'restore interrupted', { hint: `the destination is incomplete (marked by ${INCOMPLETE_MARKER}); rerun with --delta to finish it` });
        return;
      }
      const b = batches[next++]!;
      try {
        const work: RestoreFileJob[] = b.map((m) => ({ backupDir: opts.backupDir, codec: opts.codec, member: m, target: join(rootOf(opts, m.ts), m.path), delta: opts.delta }));
        const results = await pool.restoreFiles(work);
        for (let i = 0; i < b.length; i++) {
          const m = b[i]!;
          if (results[i] === 'unchanged') summary.unchanged++;
          else {
            summary.files++;
            summary.bytes += m.size;
          }
          progress.bytesDone += m.size;
          progress.filesDone++;
        }
        report();
      } catch (e) {
        if (failure === null) failure = e;
      }
    }
  };
  try {
    // Two batches per worker in flight: a worker never waits for the main thread.
    await Promise.all(Array.from({ length: Math.min(pool.size * 2, Math.max(1, batches.length)) }, lane));
  } finally {
    if (!opts.pool) await pool.close();
  }
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


