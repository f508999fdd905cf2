// Measurement primitives for the benchmark: run a command and take its wall time, peak RSS and
// CPU; sample a live process from /proc; sizes of output trees; medians and percentiles.
// Kept apart from the contenders so every contender is measured the same way.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { lstat, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

const TIME_BIN = '/usr/bin/time';
const CLK_TCK = 100; // Linux USER_HZ: /proc/<pid>/stat counts CPU in 1/100 s on every mainstream kernel

export interface MeasuredRun {
  wallS: number;
  /** peak resident set size, kB (the largest of the process and its descendants) */
  maxRssKb: number | null;
  cpuS: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOpts {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

/** A command failed: the message carries the tail of its stderr, which is what the report prints. */
export class CommandError extends Error {}

function tail(s: string, lines = 6): string {
  return s.trim().split('\n').slice(-lines).join(' | ');
}

/**
 * Runs cmd to completion and measures it. With /usr/bin/time the kernel's rusage gives peak RSS
 * and CPU exactly; without it, /proc/<pid>/status VmHWM is polled every 20 ms (a lower bound).
 * Wall time is taken here, around spawn and exit, so it includes process start-up as a user sees.
 */
export async function runMeasured(cmd: string, args: string[], opts: RunOpts = {}): Promise<MeasuredRun> {
  const useTime = existsSync(TIME_BIN);
  const timeOut = useTime ? `/tmp/bench-time-${process.pid}-${Math.random().toString(36).slice(2)}` : '';
  const argv = useTime ? [TIME_BIN, '-f', '%M %U %S', '-o', timeOut, cmd, ...args] : [cmd, ...args];
  const t0 = process.hrtime.bigint();
  const child = spawn(argv[0]!, argv.slice(1), { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let hwm = 0;
  let cpuTicks = 0;
  const poll = useTime
    ? null
    : setInterval(() => {
        const s = procSample(child.pid!);
        if (s) {
          hwm = Math.max(hwm, s.hwmKb);
          cpuTicks = Math.max(cpuTicks, s.cpuTicks);
        }
      }, 20);
  const { code, signal, stdout, stderr } = await collect(child, opts.timeoutMs);
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  if (poll) clearInterval(poll);
  let maxRssKb: number | null = hwm || null;
  let cpuS: number | null = useTime ? null : cpuTicks / CLK_TCK;
  if (useTime) {
    const text = await readFile(timeOut, 'utf8').catch(() => '');
    await rm(timeOut, { force: true });
    const m = /(\d+) ([\d.]+) ([\d.]+)\s*$/.exec(text.trim());
    if (m) {
      maxRssKb = Number(m[1]);
      cpuS = Number(m[2]) + Number(m[3]);
    }
  }
  if (code !== 0) {
    throw new CommandError(`${cmd.split('/').pop()} exited ${signal ?? code}: ${tail(stderr || stdout) || '(no output)'}`);
  }
  return { wallS, maxRssKb, cpuS, stdout, stderr };
}

function collect(child: ChildProcess, timeoutMs = 3_600_000): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-65536)));
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-65536)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Runs a command, returns stdout; throws CommandError with the stderr tail on failure. */
export async function runQuiet(cmd: string, args: string[], opts: RunOpts = {}): Promise<string> {
  const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const r = await collect(child, opts.timeoutMs);
  if (r.code !== 0) throw new CommandError(`${cmd.split('/').pop()} ${args[0] ?? ''} exited ${r.signal ?? r.code}: ${tail(r.stderr || r.stdout) || '(no output)'}`);
  return r.stdout;
}

export interface ProcSample {
  rssKb: number;
  hwmKb: number;
  /** utime + stime, in clock ticks */
  cpuTicks: number;
}

/** RSS, peak RSS and CPU of one live process; null once it is gone. */
export function procSample(pid: number): ProcSample | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields after "(comm)": state=0 ... utime=11 stime=12 (man 5 proc, 14 and 15 counted from 1)
    const cpuTicks = Number(f[11]) + Number(f[12]);
    const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM'), cpuTicks };
  } catch {
    return null;
  }
}

/** The process and every descendant (a daemon may fork helpers). */
export function processTree(root: number): number[] {
  const parent = new Map<number, number>();
  for (const e of readdirSyncSafe('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* exited meanwhile */
    }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [pid, ppid] of parent) if (ppid === out[i]) out.push(pid);
  return out;
}

function readdirSyncSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Summed RSS (kB) and CPU (s) of a process tree right now. */
export function treeSample(root: number): { rssKb: number; cpuS: number } {
  let rssKb = 0;
  let ticks = 0;
  for (const pid of processTree(root)) {
    const s = procSample(pid);
    if (s) {
      rssKb += s.rssKb;
      ticks += s.cpuTicks;
    }
  }
  return { rssKb, cpuS: ticks / CLK_TCK };
}

/** Bytes of the regular files under a path (symlinks not followed); `skip` names top-level entries to leave out. */
export async function treeBytes(path: string, skip: string[] = []): Promise<number> {
  let st;
  try {
    st = await lstat(path);
  } catch {
    return 0;
  }
  if (st.isFile()) return st.size;
  if (!st.isDirectory()) return 0;
  let total = 0;
  for (const e of await readdir(path)) {
    if (skip.includes(e)) continue;
    total += await treeBytes(join(path, e));
  }
  return total;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Wait for a condition with a deadline (no bare sleeps as synchronisation). */
export async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}

// ------------------------------------------------------------------ statistics

export function median(xs: number[]): number | null {
  return quantile(xs, 0.5);
}

/** Linear interpolation between closest ranks; null for an empty list. */
export function quantile(xs: number[], q: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

export function minMax(xs: number[]): [number, number] | null {
  if (xs.length === 0) return null;
  return [Math.min(...xs), Math.max(...xs)];
}
