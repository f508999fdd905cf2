// The bench's environment: the PostgreSQL 15 cluster (test harness) loaded with pgbench, the paths of
// Debian's PostgreSQL 15 client tools, how to call the barmants CLI, barmants config files, and the
// temp directories that must all be gone when the bench ends.

import { existsSync, rmSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startCluster, type Cluster } from '../../test/harness/index.js';
import { runQuiet } from './measure.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const PG_BIN = process.env.BENCH_PG_BIN ?? '/usr/lib/postgresql/15/bin';
export const BARMANTS_BIN = join(REPO_ROOT, 'packages', 'barmants', 'bin', 'barmants.js');

export function pgTool(name: string): string {
  return join(PG_BIN, name);
}

export function checkTools(): string[] {
  const missing: string[] = [];
  for (const t of ['pg_basebackup', 'pg_receivewal', 'pgbench', 'psql']) if (!existsSync(pgTool(t))) missing.push(pgTool(t));
  if (!existsSync(join(REPO_ROOT, 'packages', 'barmants', 'dist', 'cli', 'index.js'))) missing.push('packages/barmants/dist (run npm run build)');
  return missing;
}

/** Everything the bench creates on disk, removed in the end whatever happened. */
export class Scratch {
  private root: string | null = null;
  async dir(prefix: string): Promise<string> {
    this.root ??= await mkdtemp(join(process.env.BENCH_TMPDIR ?? tmpdir(), 'barmants-benchrun-'));
    // PostgreSQL (an unprivileged user when we are root) must be able to enter it to start a restored copy.
    await chmod(this.root, 0o711);
    return mkdtemp(join(this.root, `${prefix}-`));
  }
  get path(): string | null {
    return this.root;
  }
  removeAllSync(): void {
    if (this.root) rmSync(this.root, { recursive: true, force: true });
    this.root = null;
  }
  async removeAll(): Promise<void> {
    if (this.root) await rm(this.root, { recursive: true, force: true });
    this.root = null;
  }
}

export interface BenchCluster {
  cluster: Cluster;
  /** environment for libpq client tools, as the replication user */
  replEnv: NodeJS.ProcessEnv;
  /** environment for libpq client tools, as the superuser */
  superEnv: NodeJS.ProcessEnv;
  /** -h -p for libpq client tools */
  hostArgs: string[];
}

function libpqEnv(user: string, password: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  env.PGUSER = user;
  env.PGPASSWORD = password;
  env.PGDATABASE = 'postgres';
  env.LC_ALL = 'C';
  return env;
}

/**
 * One PostgreSQL 15 cluster for every section. Enough senders and slots for the daemon's 20
 * servers plus a spare; checkpoints spaced so the load section measures streaming, not checkpoints.
 */
export async function prepareCluster(scale: number, log: (s: string) => void): Promise<BenchCluster> {
  const cluster = await startCluster({
    version: 15,
    name: 'bench',
    conf: [
      'max_wal_senders = 30',
      'max_replication_slots = 30',
      'max_connections = 80',
      'shared_buffers = 128MB',
      'max_wal_size = 4GB',
      'checkpoint_timeout = 30min',
      'wal_sender_timeout = 60s',
    ],
  });
  const bc: BenchCluster = {
    cluster,
    replEnv: libpqEnv(cluster.replUser, cluster.replPassword),
    superEnv: libpqEnv(cluster.superuser, cluster.superPassword),
    hostArgs: ['-h', cluster.host, '-p', String(cluster.port)],
  };
  const t0 = Date.now();
  await runQuiet(pgTool('pgbench'), ['-i', '-s', String(scale), '-q', ...bc.hostArgs], { env: bc.superEnv });
  await cluster.sql('CHECKPOINT');
  log(`pgbench -i -s ${scale}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return bc;
}

export async function withClient<T>(bc: BenchCluster, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ ...bc.cluster.sqlConfig(), connectionTimeoutMillis: 30_000 });
  c.on('error', () => {});
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

export interface ServerConf {
  name: string;
  backupCompression?: string;
  walCompression?: string;
  streaming?: boolean;
  slotName?: string;
  archiverName?: string;
  extra?: string[];
}

/** A barmants config file with a fresh barmants_home (so nothing dedupes against an older run). */
export async function writeBarmantsConfig(bc: BenchCluster, home: string, servers: ServerConf[]): Promise<string> {
  await mkdir(home, { recursive: true, mode: 0o700 });
  const c = bc.cluster;
  const lines = ['[barmants]', `barmants_home = ${home}`, 'log_level = WARNING', ''];
  for (const s of servers) {
    lines.push(
      `[${s.name}]`,
      'description = barmants bench',
      `conninfo = ${c.conninfo()}`,
      `streaming_conninfo = ${c.conninfo({ user: c.replUser, password: c.replPassword })}`,
      'backup_method = postgres',
      `backup_compression = ${s.backupCompression ?? 'none'}`,
      `compression = ${s.walCompression ?? 'none'}`,
      'immediate_checkpoint = true',
    );
    if (s.streaming) {
      lines.push('streaming_archiver = on', `slot_name = ${s.slotName}`, 'create_slot = auto');
      if (s.archiverName) lines.push(`streaming_archiver_name = ${s.archiverName}`);
    }
    lines.push(...(s.extra ?? []), '');
  }
  const path = join(home, 'barmants.conf');
  await writeFile(path, lines.join('\n'), { mode: 0o600 });
  return path;
}

/** argv for `node barmants.js -c CONFIG …` */
export function barmantsArgs(config: string, ...args: string[]): string[] {
  return [BARMANTS_BIN, '-c', config, ...args];
}

export async function dropSlot(bc: BenchCluster, slot: string): Promise<void> {
  await bc.cluster
    .sql('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active', [slot])
    .catch(() => {});
}
