/*
 * Hook scripts (pre/post backup, recovery, delete, wal_delete, ...) run WITHOUT a shell: the
 * configured command line is split into words (quotes and backslashes as in sh) and executed
 * directly, with Barman's environment (BARMAN_*) and the same values under BARMANTS_*.
 * Barman's semantics: a plain script's exit status is logged, never fatal; a retry script loops
 * until it exits 0, 62 (abort, continue) or 63 (abort, stop: in the pre phase the operation is
 * not done).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { BarmantsError } from '../errors/index.js';
import type { Logger } from '../log/index.js';

export const ABORT_CONTINUE = 62;
export const ABORT_STOP = 63;

/** Splits a command line into words like sh does for quotes and backslashes; no expansion. */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new BarmantsError('config', `unterminated single quote in command: ${line}`);
      cur += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      let closed = false;
      while (i < line.length) {
        const d = line[i]!;
        if (d === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1]!)) {
          cur += line[i + 1];
          i += 2;
        } else if (d === '"') {
          closed = true;
          i++;
          break;
        } else {
          cur += d;
          i++;
        }
      }
      if (!closed) throw new BarmantsError('config', `unterminated double quote in command: ${line}`);
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[i + 1];
      inWord = true;
      i += 2;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      i++;
    } else {
      cur += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

export interface HookRun {
  readonly option: string;
  readonly command: string;
  readonly exitCode: number;
  readonly output: string;
}

let version: string | undefined;

/** barmants' version, for BARMAN_VERSION when the caller does not pass one. */
function barmantsVersion(): string {
  if (version === undefined) {
    try {
      version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      version = '';
    }
  }
  return version;
}

function hookEnv(vars: Record<string, string | number | null | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(vars)) {
    const value = v === null || v === undefined ? '' : String(v);
    env[`BARMAN_${k}`] = value;
    env[`BARMANTS_${k}`] = value;
  }
  return env;
}

function runOnce(command: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number; output: string }> {
  const argv = splitCommandLine(command);
  if (argv.length === 0) return Promise.resolve({ code: 0, output: '' });
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'], shell: false, timeout: timeoutMs });
    let output = '';
    const keep = (b: Buffer) => {
      if (output.length < 64 * 1024) output += b.toString();
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (err) => resolve({ code: 127, output: `${output}${err.message}` }));
    child.on('close', (code, sig) => resolve({ code: code ?? (sig ? 128 : 1), output }));
  });
}

export interface HookContext {
  /** e.g. 'backup', 'recovery', 'delete', 'wal_delete' */
  operation: string;
  phase: 'pre' | 'post';
  hooks: Record<string, string>;
  vars: Record<string, string | number | null | undefined>;
  logger: Logger;
  /** for retry scripts: give up after this many attempts (Barman retries forever; we cap) */
  maxRetries?: number;
  retrySleepMs?: number;
  timeoutMs?: number;
}

/**
 * Runs the phase's scripts in Barman's order: pre → pre_retry, post_retry → post. Only a pre
 * retry script can stop the operation (exit 63, or still failing after maxRetries attempts):
 * runHooks then throws a 'hook' error. Everything else is logged.
 */
export async function runHooks(h: HookContext): Promise<HookRun[]> {
  const names = h.phase === 'pre' ? [`pre_${h.operation}_script`, `pre_${h.operation}_retry_script`] : [`post_${h.operation}_retry_script`, `post_${h.operation}_script`];
  const runs: HookRun[] = [];
  for (const option of names) {
    const command = h.hooks[option];
    if (!command) continue;
    const retry = option.includes('_retry_');
    // BARMAN_HOOK is the option name without its phase, as Barman sets it (e.g. wal_delete_retry_script).
    const env = hookEnv({ VERSION: barmantsVersion(), CONFIGURATION: '', ERROR: '', ...h.vars, PHASE: h.phase, HOOK: option.slice(h.phase.length + 1), RETRY: retry ? 1 : 0 });
    let attempt = 0;
    for (;;) {
      attempt++;
      const r = await runOnce(command, env, h.timeoutMs ?? 3_600_000);
      runs.push({ option, command, exitCode: r.code, output: r.output });
      if (r.code === 0) {
        h.logger.debug(`${option} succeeded`);
        break;
      }
      if (!retry) {
        h.logger.warn(`${option} exited with ${r.code}: ${r.output.trim().split('\n').slice(-1)[0] ?? ''}`);
        break;
      }
      if (r.code === ABORT_CONTINUE) {
        h.logger.warn(`${option} asked to stop retrying and continue (exit 62)`);
        break;
      }
      if (r.code === ABORT_STOP) {
        if (h.phase === 'pre') throw new BarmantsError('hook', `${option} '${command}' aborted the ${h.operation} (exit 63)`);
        h.logger.warn(`${option} aborted (exit 63)`);
        break;
      }
      const max = h.maxRetries ?? 10;
      if (attempt >= max) {
        const msg = `${option} still failing after ${attempt} attempts (last exit ${r.code})`;
        if (h.phase === 'pre') throw new BarmantsError('hook', msg);
        h.logger.warn(msg);
        break;
      }
      h.logger.warn(`${option} exited with ${r.code}; retrying (attempt ${attempt + 1})`);
      await new Promise((res) => setTimeout(res, h.retrySleepMs ?? (attempt >= 5 ? 60_000 : 3_000)));
    }
  }
  return runs;
}
