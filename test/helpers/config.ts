// Shared test helpers: a barmants configuration file pointing at a harness cluster, in a fresh
// temporary barmants_home, and a way to run the built CLI (`npm run build` first).
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Cluster } from '../harness/index.js';

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
export const CLI = join(REPO_ROOT, 'packages', 'barmants', 'bin', 'barmants.js');

export interface TestConfigOptions {
  /** server section name (default 'pg') */
  server?: string;
  /** barmants_home; a fresh temp dir by default */
  home?: string;
  /** extra `key = value` lines for the server section (override the defaults below) */
  options?: Record<string, string | number | boolean>;
  /** extra lines for the [barmants] section */
  global?: Record<string, string | number | boolean>;
  /** more servers: name → (cluster, options) */
  more?: { name: string; cluster: Cluster; options?: Record<string, string | number | boolean> }[];
}

export interface TestConfig {
  path: string;
  home: string;
  server: string;
  /** removes the home directory (and the config file, stored inside it) */
  cleanup(): Promise<void>;
}

function section(name: string, cluster: Cluster, options: Record<string, string | number | boolean> = {}): string[] {
  const base: Record<string, string | number | boolean> = {
    description: `test cluster ${cluster.version}`,
    conninfo: cluster.conninfo(),
    streaming_conninfo: cluster.conninfo({ user: cluster.replUser, password: cluster.replPassword }),
    backup_method: 'postgres',
    immediate_checkpoint: 'on',
    ...options,
  };
  return [`[${name}]`, ...Object.entries(base).map(([k, v]) => `${k} = ${typeof v === 'boolean' ? (v ? 'on' : 'off') : v}`), ''];
}

/** Writes `<home>/barmants.conf` for `cluster` and returns where it is. */
export async function writeTestConfig(cluster: Cluster, opts: TestConfigOptions = {}): Promise<TestConfig> {
  const home = opts.home ?? (await mkdtemp(join(tmpdir(), 'barmants-test-')));
  const server = opts.server ?? 'pg';
  const lines = ['[barmants]', `barmants_home = ${home}`, 'log_level = INFO', ...Object.entries(opts.global ?? {}).map(([k, v]) => `${k} = ${v}`), ''];
  lines.push(...section(server, cluster, opts.options));
  for (const m of opts.more ?? []) lines.push(...section(m.name, m.cluster, m.options));
  const path = join(home, 'barmants.conf');
  await writeFile(path, lines.join('\n'), { mode: 0o600 });
  return { path, home, server, cleanup: () => rm(home, { recursive: true, force: true }) };
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** the signal that ended the process, if one did (code is then 128) */
  signal?: NodeJS.Signals | null;
}

/** Runs the built CLI (`node packages/barmants/bin/barmants.js ...args`) to completion. */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? (signal ? 128 : 1), stdout, stderr, signal });
    });
  });
}

/** runCli with `-c config`; asserts nothing. */
export function barmants(cfg: TestConfig | string, args: string[], opts?: { env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<CliRun> {
  return runCli(['-c', typeof cfg === 'string' ? cfg : cfg.path, ...args], opts);
}

/** Polls `cond` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(cond: () => T | Promise<T>, what: string, timeoutMs = 30_000, everyMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
