/*
 * Test-side setup for the WAL receiver tests: a temp barmants home and config file for a
 * harness cluster, the objects a WalReceiver needs, a CLI runner, and byte comparisons against
 * the server's own pg_wal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { Catalog } from '../../../packages/barmants/src/catalog/index.js';
import { loadConfig, type ServerConfig } from '../../../packages/barmants/src/config/index.js';
import { createLogger, type Logger } from '../../../packages/barmants/src/log/index.js';
import { ServerLayout, catalogPath, ensureDir } from '../../../packages/barmants/src/repository/index.js';
import { readWal } from '../../../packages/barmants/src/wal/index.js';
import type { Cluster } from '../../harness/index.js';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = join(repoRoot, 'packages/barmants/bin/barmants.js');

export interface WalEnv {
  home: string;
  configPath: string;
  server: ServerConfig;
  layout: ServerLayout;
  catalog: Catalog;
  logger: Logger;
  cleanup(): Promise<void>;
}

export async function walEnv(
  cluster: Cluster,
  o: { name?: string; compression?: string; extra?: string[]; slot?: string | null; flushIntervalMs?: number } = {},
): Promise<WalEnv> {
  const home = await mkdtemp(join(tmpdir(), 'barmants-wal-'));
  await ensureDir(home);
  const name = o.name ?? 'pg';
  const lines = [
    '[barmants]',
    `barmants_home = ${home}`,
    'log_level = INFO',
    '',
    `[${name}]`,
    `conninfo = ${cluster.conninfo()}`,
    `streaming_conninfo = ${cluster.conninfo({ user: cluster.replUser, password: cluster.replPassword })}`,
    'backup_method = postgres',
    'streaming_archiver = on',
    ...(o.slot === null ? [] : [`slot_name = ${o.slot ?? 'barmants'}`, 'create_slot = auto']),
    `compression = ${o.compression ?? 'none'}`,
    `wal_flush_interval = ${o.flushIntervalMs ?? 100} ms`,
    ...(o.extra ?? []),
    '',
  ];
  const configPath = join(home, 'barmants.conf');
  await writeFile(configPath, lines.join('\n'), { mode: 0o600 });
  const config = loadConfig({ path: configPath });
  const server = config.servers.get(name)!;
  const layout = new ServerLayout(home, name, server.backupDirectory ?? undefined);
  const catalog = Catalog.open(catalogPath(home));
  const logger = createLogger({ level: process.env.BARMANTS_TEST_LOG ?? 'WARNING' });
  return {
    home, configPath, server, layout, catalog, logger,
    async cleanup() {
      catalog.close();
      await logger.close();
      if (!process.env.BARMANTS_TEST_KEEP) await rm(home, { recursive: true, force: true });
    },
  };
}

/**
 * Writes a row, then switches: the closed segment then always holds new WAL (a switch right
 * after another one is a no-op, and pg_walfile_name() of a boundary differs across versions).
 */
export async function writeAndSwitch(cluster: Cluster): Promise<string> {
  await cluster.sql('CREATE TABLE IF NOT EXISTS t_wal_marker (x int)');
  await cluster.sql('INSERT INTO t_wal_marker VALUES (1)');
  const rows = await cluster.sql<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal() - 1) AS f');
  return rows[0]!.f;
}

/** Polls `cond` until it is truthy or the deadline passes (then throws with `what`). */
export async function waitFor<T>(what: string, cond: () => T | Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(50);
  }
}

/**
 * Compares every archived segment (decompressed) with the server's pg_wal copy; returns how many
 * were compared. Segments the server already removed are skipped (they are counted apart).
 */
export async function compareWithServer(env: WalEnv, cluster: Cluster): Promise<{ compared: number; missingOnServer: number; names: string[] }> {
  let compared = 0;
  let missingOnServer = 0;
  const names: string[] = [];
  for (const rec of env.catalog.listWalSegments(env.server.name)) {
    const serverPath = join(cluster.dataDir, 'pg_wal', rec.name);
    if (!existsSync(serverPath)) {
      missingOnServer++;
      continue;
    }
    const ours = await readWal(env.layout, env.catalog, rec.name);
    const theirs = await readFile(serverPath);
    if (!ours || !ours.equals(theirs)) throw new Error(`segment ${rec.name} differs from the server's (${ours?.length} vs ${theirs.length} bytes)`);
    compared++;
    names.push(rec.name);
  }
  return { compared, missingOnServer, names };
}

export interface CliRun {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs the built CLI to completion. */
export function runCli(args: string[], opts: { timeoutMs?: number } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

/** Starts the built CLI in the background (receive-wal). */
export function startCli(args: string[]): { child: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stdout!.on('data', () => undefined);
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code, sig) => resolve(code ?? (sig ? -1 : null))));
  return { child, stderr: () => err, exited };
}
