/*
 * Shared steps of the point-in-time recovery tests: a barmants home for a harness cluster with
 * the streaming archiver, a `receive-wal` child process, CLI calls that must succeed, and the
 * checks made on a restored data directory. Built on test/helpers/config.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import type { Cluster } from '../../harness/index.js';
import { CLI, barmants, waitFor, writeTestConfig, type CliRun, type TestConfig } from '../../helpers/config.js';

export { barmants, waitFor, type CliRun, type TestConfig };

export type Codec = 'none' | 'gzip' | 'lz4' | 'zstd';

/** A config with the streaming archiver on (slot created automatically) and the given codecs. */
export function pitrConfig(cluster: Cluster, o: { codec?: Codec; backupCodec?: Codec; extra?: Record<string, string> } = {}): Promise<TestConfig> {
  return writeTestConfig(cluster, {
    options: {
      streaming_archiver: 'on',
      slot_name: 'barmants',
      create_slot: 'auto',
      compression: o.codec ?? 'none',
      backup_compression: o.backupCodec ?? o.codec ?? 'none',
      ...o.extra,
    },
  });
}

export interface Receiver {
  child: ChildProcess;
  /** everything the receiver wrote to stderr so far (its log), for failure messages */
  log(): string;
  /** SIGTERM, then wait for the exit; resolves to the exit code */
  stop(): Promise<number | null>;
}

/**
 * Starts `barmants receive-wal` in the background and returns once the server lists it as a
 * streaming client on its slot (so WAL written from now on is kept for it).
 */
export async function startReceiver(cfg: TestConfig, source: Cluster, opts: { slot?: string } = {}): Promise<Receiver> {
  const child = spawn(process.execPath, [CLI, '-c', cfg.path, 'receive-wal', cfg.server], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  let exited: number | null | undefined;
  const exit = new Promise<number | null>((r) => child.once('exit', (code, sig) => r((exited = code ?? (sig ? 128 : null)))));
  const rx: Receiver = {
    child,
    log: () => out,
    async stop() {
      if (exited === undefined) child.kill('SIGTERM');
      return exit;
    },
  };
  try {
    const slot = opts.slot ?? 'barmants';
    await waitFor(async () => {
      if (exited !== undefined) throw new Error(`receive-wal exited (${exited}) before streaming:\n${out}`);
      // A standby has no pg_stat_replication row for a slot of its own name; ask for the walsender.
      const rows = await source.sql<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = 'barmants_receive_wal' AND state = 'streaming'`,
      );
      const slots = await source.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = $1 AND active`, [slot]);
      return rows[0]!.n > 0 && slots[0]!.n > 0;
    }, 'receive-wal to stream', 60_000);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return rx;
}

/** Runs the CLI and asserts exit 0; returns stdout. */
export async function ok(cfg: TestConfig, args: string[], timeoutMs = 180_000): Promise<string> {
  const r = await barmants(cfg, args, { timeoutMs });
  assert.equal(r.code, 0, `barmants ${args.join(' ')} exited ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`);
  return r.stdout;
}

/** Runs the CLI and asserts a non-zero exit; returns the run. */
export async function fails(cfg: TestConfig, args: string[], timeoutMs = 180_000): Promise<CliRun> {
  const r = await barmants(cfg, args, { timeoutMs });
  assert.notEqual(r.code, 0, `barmants ${args.join(' ')} should have failed\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`);
  return r;
}

/** `backup SRV --wait` and the new backup's id (from the catalog, via list-backups -f json). */
export async function backupWait(cfg: TestConfig, extra: string[] = []): Promise<string> {
  const before = new Set(await backupIds(cfg));
  await ok(cfg, ['backup', cfg.server, '--wait', '--wait-timeout', '120', ...extra]);
  const ids = (await backupIds(cfg)).filter((i) => !before.has(i));
  assert.equal(ids.length, 1, `expected one new backup, got ${ids.join(', ')}`);
  return ids[0]!;
}

export async function backupIds(cfg: TestConfig): Promise<string[]> {
  const base = join(cfg.home, cfg.server, 'base');
  if (!existsSync(base)) return [];
  return (await readdir(base)).filter((d) => /^\d{8}T\d{6}$/.test(d)).sort();
}

export async function backupInfo(cfg: TestConfig, id: string): Promise<Record<string, any>> {
  return JSON.parse(await readFile(join(cfg.home, cfg.server, 'base', id, 'backup.info'), 'utf8'));
}

/** switch-wal --archive: the current segment is closed and in the archive when this returns. */
export async function switchAndArchive(cfg: TestConfig): Promise<void> {
  await ok(cfg, ['switch-wal', cfg.server, '--archive', '--archive-timeout', '90']);
}

/** The server's clock, with its zone, in the form PostgreSQL prints (e.g. 2026-11-27 06:02:32.108123+01). */
export async function serverNow(c: Cluster): Promise<string> {
  const [row] = await c.sql<{ t: string }>('SELECT clock_timestamp()::text AS t');
  return row!.t;
}

/** Polls until the restored server has left recovery and checkpointed on a timeline > 1; returns it. */
export async function promotedTimeline(c: Cluster, timeoutMs = 120_000): Promise<number> {
  return waitFor(async () => {
    const [r] = await c.sql<{ rec: boolean; tli: number }>('SELECT pg_is_in_recovery() AS rec, (SELECT timeline_id FROM pg_control_checkpoint())::int AS tli');
    if (!r!.rec && r!.tli > 1) return r!.tli;
    // The end-of-recovery checkpoint is requested, not awaited; ask for it once recovery is over.
    if (!r!.rec) await c.sql('CHECKPOINT');
    return 0;
  }, 'the restored server to promote and checkpoint on a new timeline', timeoutMs, 200);
}

export async function count(c: Cluster, table: string): Promise<number> {
  const [r] = await c.sql<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return r!.n;
}

/** A fingerprint of a directory tree (names, sizes, content hashes), to prove it unchanged. */
export async function treeFingerprint(dir: string): Promise<string> {
  if (!existsSync(dir)) return '<absent>';
  const h = createHash('sha256');
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        h.update(`d ${r}\n`);
        await walk(p, r);
      } else if (e.isFile()) {
        h.update(`f ${r} ${(await stat(p)).size} `);
        h.update(await readFile(p));
        h.update('\n');
      } else h.update(`o ${r}\n`);
    }
  };
  await walk(dir, '');
  return h.digest('hex');
}
