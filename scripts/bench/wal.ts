// WAL streaming section: `barmants receive-wal` against pg_receivewal run as Barman runs it, each
// alone under the same pgbench load: pgbench TPS, flush lag sampled from pg_stat_replication every
// 100 ms, the receiver's CPU (and how much of it is in the kernel) and peak RSS.
// Diagnostics, off by default: BARMANTS_BENCH_NODE_ARGS adds node options to the barmants receiver
// only (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p` to profile it under this load);
// BARMANTS_BENCH_THREADS=1 prints each receiver's CPU per thread since its start and its memory
// at the end of the load; BARMANTS_BENCH_LAGS=1 prints every flush-lag sample.

import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { alternate, type Comparison, type MetricSpec } from './report.js';
import { procSample, quantile, runQuiet, waitFor } from './measure.js';
import { barmantsArgs, dropSlot, pgTool, writeBarmantsConfig, type BenchCluster, type Scratch } from './setup.js';

export const WAL_METRICS: MetricSpec[] = [
  { key: 'tps', label: 'pgbench TPS', unit: '', digits: 0 },
  { key: 'walMBps', label: 'WAL rate', unit: 'MB/s', digits: 1 },
  { key: 'lagMedianMB', label: 'flush lag median', unit: 'MB', digits: 2 },
  { key: 'lagP95MB', label: 'lag p95', unit: 'MB', digits: 2 },
  { key: 'lagMaxMB', label: 'lag max', unit: 'MB', digits: 2 },
  { key: 'cpuS', label: 'receiver CPU', unit: 's', digits: 2 },
  { key: 'cpuSysS', label: 'of which kernel', unit: 's', digits: 2 },
  { key: 'peakRssMB', label: 'receiver peak RSS', unit: 'MB', digits: 0 },
];

const MB = 1e6;
const SAMPLE_MS = 100;

interface Receiver {
  start: (dir: string) => ChildProcess;
  appName: string;
  slot: string;
}

export async function benchWal(bc: BenchCluster, scratch: Scratch, seconds: number, rounds: number, log: (s: string) => void): Promise<Comparison> {
  let dir = '';
  const ours: Receiver = {
    appName: 'bench_barmants',
    slot: 'bench_barmants',
    start: (home) => {
      // The config is written synchronously enough: see run() below, which awaits it first.
      const nodeArgs = (process.env.BARMANTS_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
      return spawn(process.execPath, [...nodeArgs, ...barmantsArgs(join(home, 'barmants.conf'), 'receive-wal', 'bench')], { stdio: ['ignore', 'ignore', 'pipe'] });
    },
  };
  const theirs: Receiver = {
    appName: 'bench_pg_receivewal',
    slot: 'bench_pg_receivewal',
    start: (d) =>
      // Barman's receive-wal: pg_receivewal --no-loop --no-password --directory --slot, default
      // --status-interval (10 s) and no --synchronous.
      spawn(pgTool('pg_receivewal'), ['--no-loop', '--no-password', '--directory', d, '--slot', theirs.slot, ...bc.hostArgs], {
        env: { ...bc.replEnv, PGAPPNAME: theirs.appName },
        stdio: ['ignore', 'ignore', 'pipe'],
      }),
  };
  const cleanup = (slot: string) => async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = '';
    await dropSlot(bc, slot);
  };
  return alternate(
    {
      section: 'wal',
      title: `WAL streaming under pgbench -c 4 -j 2 -T ${seconds}`,
      metrics: WAL_METRICS,
      baseline: 1,
      ratioMetrics: ['lagMedianMB', 'tps'],
    },
    [
      {
        name: 'barmants receive-wal',
        command: 'barmants receive-wal bench [streaming_archiver = on, create_slot = auto]',
        run: async () => {
          dir = await scratch.dir('wal-barmants');
          await writeBarmantsConfig(bc, dir, [{ name: 'bench', streaming: true, slotName: ours.slot, archiverName: ours.appName }]);
          return streamUnderLoad(bc, ours, dir, seconds);
        },
        cleanup: cleanup(ours.slot),
      },
      {
        name: 'pg_receivewal (as Barman runs it)',
        command: `pg_receivewal --no-loop --no-password --directory DIR --slot ${theirs.slot}`,
        run: async () => {
          dir = await scratch.dir('wal-pgrw');
          const walDir = join(dir, 'streaming');
          await mkdir(walDir);
          return streamUnderLoad(bc, theirs, walDir, seconds);
        },
        cleanup: cleanup(theirs.slot),
      },
    ],
    rounds,
    log,
    0, // a WAL run is a minute of pgbench: no warm-up round
  );
}

async function streamUnderLoad(bc: BenchCluster, rx: Receiver, dir: string, seconds: number) {
  // Same starting point for both: a fresh slot holding WAL from now, a checkpoint just done (so
  // full-page writes weigh the same in each run).
  await dropSlot(bc, rx.slot);
  await bc.cluster.sql('SELECT pg_create_physical_replication_slot($1, true)', [rx.slot]);
  await bc.cluster.sql('CHECKPOINT');
  const child = rx.start(dir);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8192)));
  let exited: string | null = null;
  child.on('exit', (code, signal) => (exited = `exited ${signal ?? code}`));
  const died = () => new Error(`receiver ${exited}: ${stderr.trim().split('\n').slice(-3).join(' | ') || '(no output)'}`);
  const client = new pg.Client({ ...bc.cluster.sqlConfig(), connectionTimeoutMillis: 30_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    await waitFor(
      `${rx.appName} to stream`,
      async () => {
        if (exited) throw died();
        const r = await client.query(`SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`, [rx.appName]);
        return r.rowCount === 1;
      },
      60_000,
    );
    const pid = child.pid!;
    const cpu0 = procSample(pid)?.cpuTicks ?? 0;
    const split0 = cpuSplit(pid);
    const lsn0 = await currentLsn(client);
    const lags: number[] = [];
    let busy = false;
    let missing = 0;
    const sampler = setInterval(() => {
      if (busy) return;
      busy = true;
      client
        .query<{ lag: string | null }>(
          `SELECT (pg_current_wal_lsn() - flush_lsn)::text AS lag FROM pg_stat_replication WHERE application_name = $1`,
          [rx.appName],
        )
        .then((r) => {
          const v = r.rows[0]?.lag;
          if (v === undefined || v === null) missing++;
          else lags.push(Math.max(0, Number(v)));
          if (process.env.BARMANTS_BENCH_LAGS && v != null) process.stderr.write(`[bench] LAG ${rx.appName} ${lags.length} ${(Number(v) / MB).toFixed(2)}\n`);
        })
        .catch(() => missing++)
        .finally(() => (busy = false));
    }, SAMPLE_MS);
    let out: string;
    try {
      out = await runQuiet(pgTool('pgbench'), ['-c', '4', '-j', '2', '-T', String(seconds), ...bc.hostArgs], {
        env: bc.superEnv,
        timeoutMs: (seconds + 120) * 1000,
      });
    } finally {
      clearInterval(sampler);
    }
    const lsn1 = await currentLsn(client);
    if (exited) throw died();
    const s = procSample(pid);
    const cpuS = s ? (s.cpuTicks - cpu0) / 100 : null;
    const split1 = cpuSplit(pid);
    if (process.env.BARMANTS_BENCH_THREADS) process.stderr.write(`[bench] ${rx.appName} threads (user+sys ticks): ${threadCpu(pid)}; ${memory(pid)}\n`);
    const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1] ?? /tps = ([\d.]+)/.exec(out)?.[1] ?? NaN);
    const walBytes = Number(lsn1 - lsn0);
    const q = (p: number) => quantile(lags, p);
    return {
      tps: Number.isFinite(tps) ? tps : null,
      walMBps: walBytes / MB / seconds,
      lagMedianMB: nullableDiv(q(0.5), MB),
      lagP95MB: nullableDiv(q(0.95), MB),
      lagMaxMB: nullableDiv(q(1), MB),
      lagMedianBytes: q(0.5),
      lagP95Bytes: q(0.95),
      lagMaxBytes: q(1),
      lagSamples: lags.length,
      lagSamplesMissing: missing,
      walBytes,
      cpuS,
      cpuPctOfCore: cpuS === null ? null : (cpuS / seconds) * 100,
      cpuUserS: split0 && split1 ? (split1.user - split0.user) / 100 : null,
      cpuSysS: split0 && split1 ? (split1.sys - split0.sys) / 100 : null,
      peakRssMB: s ? s.hwmKb / 1024 : null,
    };
  } finally {
    await client.end().catch(() => {});
    await stop(child);
  }
}

/** utime and stime in clock ticks (man 5 proc): where the receiver's CPU goes, user code or syscalls. */
function cpuSplit(pid: number): { user: number; sys: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]), sys: Number(f[12]) };
  } catch {
    return null;
  }
}

/** CPU per thread name (main thread, libuv pool, V8 GC, workers), for finding where the time goes. */
function threadCpu(pid: number): string {
  const by = new Map<string, number>();
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const name = t === String(pid) ? `main` : comm;
      by.set(name, (by.get(name) ?? 0) + Number(f[11]) + Number(f[12]));
    }
  } catch {
    /* exited */
  }
  return [...by].map(([k, v]) => `${k}=${v}`).join(' ');
}

/** The process's memory at this instant, from smaps_rollup. */
function memory(pid: number): string {
  try {
    const r = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    return ['Rss', 'Anonymous', 'Pss_File', 'Private_Dirty'].map((k) => `${k} ${Math.round(Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(r)?.[1] ?? 0) / 1024)} MB`).join(', ');
  } catch {
    return '';
  }
}

function nullableDiv(x: number | null, d: number): number | null {
  return x === null ? null : x / d;
}

async function currentLsn(c: pg.Client): Promise<bigint> {
  const r = await c.query<{ l: string }>(`SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::text AS l`);
  return BigInt(r.rows[0]!.l.replace(/\..*$/, ''));
}

/** SIGTERM, then SIGKILL after 15 s: a receiver that will not stop must not outlive the bench. */
export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await gone;
  clearTimeout(t);
}
