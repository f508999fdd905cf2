// Per-server, per-purpose lock files (`<home>/.locks/<server>-<purpose>.lock`) that a kill -9
// cannot leave stuck: the file names its owner (pid + kernel start time + host), and a lock whose
// owner is gone, or whose pid now belongs to another process, is taken over.
//
// Creation is atomic and never exposes a half-written file: the content is written and fsynced to a
// private temp file, then link()ed to the lock name (fails with EEXIST if the lock exists).
// Takeover renames the stale file to a private name and checks that what it moved is byte for byte
// the stale content it judged; if a racer had already replaced it with a live lock, that lock is
// linked back. Residual window: a third process creating the lock during those microseconds.
import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { BarmantsError } from '../errors/index.js';
import { fsyncDir } from './durable.js';
import { ensureDir } from './layout.js';

export interface LockOwner {
  pid: number;
  /** /proc/<pid>/stat field 22 (clock ticks since boot); null where /proc is not available */
  startTime: string | null;
  host: string;
  purpose: string;
  /** ISO timestamp of acquisition */
  since: string;
}

export interface Lock {
  readonly path: string;
  readonly owner: LockOwner;
  release(): Promise<void>;
}

export interface AcquireOptions {
  purpose: string;
  /** keep trying until the lock is free (or timeoutMs elapses) instead of failing at once */
  wait?: boolean;
  timeoutMs?: number;
  log?: (msg: string) => void;
}

/** The kernel start time of a process, which tells a reused pid from the original owner. */
export async function processStartTime(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[22 - 3] ?? null;
  } catch {
    return null;
  }
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the process named by a lock file still runs (same host only; elsewhere: assume it does). */
export async function ownerAlive(owner: LockOwner): Promise<boolean> {
  if (owner.host !== hostname()) return true;
  if (!Number.isInteger(owner.pid) || owner.pid <= 0 || !pidExists(owner.pid)) return false;
  if (owner.startTime === null) return true;
  const now = await processStartTime(owner.pid);
  return now === null ? pidExists(owner.pid) : now === owner.startTime;
}

function parseOwner(text: string): LockOwner | null {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (typeof o.pid !== 'number' || typeof o.host !== 'string') return null;
    return {
      pid: o.pid, startTime: o.startTime ?? null, host: o.host, purpose: String(o.purpose ?? '?'), since: String(o.since ?? '?'),
    };
  } catch {
    return null;
  }
}

async function readText(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** The live owner of a lock, or null when it is free or held by a dead process (status, --stop). */
export async function readLockOwner(path: string): Promise<LockOwner | null> {
  const text = await readText(path);
  if (text === null) return null;
  const owner = parseOwner(text);
  if (!owner) return null;
  return (await ownerAlive(owner)) ? owner : null;
}

async function createLockFile(path: string, content: string): Promise<boolean> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
    await fsyncDir(dirname(path));
  }
}

type Attempt = { lock: Lock } | { busy: LockOwner | null };

async function attempt(path: string, opts: AcquireOptions): Promise<Attempt> {
  const owner: LockOwner = {
    pid: process.pid, startTime: await processStartTime(process.pid), host: hostname(), purpose: opts.purpose,
    since: new Date().toISOString(),
  };
  const content = JSON.stringify(owner) + '\n';
  for (let round = 0; round < 5; round++) {
    if (await createLockFile(path, content)) return { lock: makeLock(path, owner, content) };
    const text = await readText(path);
    if (text === null) continue; // released meanwhile
    const current = parseOwner(text);
    // An unparseable lock cannot come from createLockFile (content is complete before the link):
    // it was damaged by hand or by the filesystem, and is treated as stale.
    if (current && (await ownerAlive(current))) return { busy: current };
    const aside = `${path}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
    try {
      await rename(path, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const moved = await readText(aside);
    if (moved === text) {
      await unlink(aside);
      opts.log?.(current
        ? `taking over stale lock ${path} of dead process ${current.pid} (${current.purpose} since ${current.since})`
        : `taking over unreadable lock ${path}`);
      continue;
    }
    // A racer took the stale lock over between our read and our rename: give its lock back.
    await link(aside, path).catch(() => undefined);
    await unlink(aside).catch(() => undefined);
  }
  return { busy: null };
}

function makeLock(path: string, owner: LockOwner, content: string): Lock {
  let released = false;
  return {
    path,
    owner,
    async release() {
      if (released) return;
      released = true;
      // Only remove the file if it is still ours: never delete a lock someone else now holds.
      if ((await readText(path)) !== content) return;
      await unlink(path).catch(() => undefined);
      await fsyncDir(dirname(path));
    },
  };
}

export async function acquireLock(path: string, opts: AcquireOptions): Promise<Lock> {
  await ensureDir(dirname(path));
  const deadline = opts.wait ? Date.now() + (opts.timeoutMs ?? Number.POSITIVE_INFINITY) : 0;
  let pause = 100;
  for (;;) {
    const r = await attempt(path, opts);
    if ('lock' in r) return r.lock;
    if (!opts.wait || Date.now() >= deadline) {
      const o = r.busy;
      const who = o
        ? `process ${o.pid} on ${o.host} (barmants ${o.purpose}, since ${o.since})`
        : 'another process (it kept changing hands)';
      throw new BarmantsError('lock', `cannot take the ${opts.purpose} lock ${path}: it is held by ${who}`, {
        hint: o
          ? `wait for process ${o.pid} to finish its ${o.purpose}, or stop it; the lock is released automatically if it dies`
          : undefined,
      });
    }
    await delay(Math.min(pause, Math.max(1, deadline - Date.now())));
    pause = Math.min(pause * 2, 1000);
  }
}
