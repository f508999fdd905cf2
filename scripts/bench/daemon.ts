// Daemon footprint: `barmants daemon` with N servers streaming WAL (all from the bench cluster, one
// slot and application_name each), idle: resident memory and CPU over a fixed window once every
// receiver streams. The target (DESIGN §8) is ≤ 150 MB RSS with 20 servers.

import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import type { Measurement } from './report.js';
import { processTree, runQuiet, sleep, treeSample, waitFor } from './measure.js';
import { barmantsArgs, BARMANTS_BIN, dropSlot, writeBarmantsConfig, type BenchCluster, type Scratch } from './setup.js';
import { stop } from './wal.js';

/** null when this build of barmants has no daemon command (it was written in parallel). */
export async function daemonMissing(): Promise<string | null> {
  try {
    const help = await runQuiet(process.execPath, [BARMANTS_BIN, '--help']);
    return /^\s+barmants daemon\b/m.test(help) ? null : 'barmants has no daemon command in this build';
  } catch (e) {
    return `barmants --help failed: ${(e as Error).message}`;
  }
}

export async function benchDaemon(bc: BenchCluster, scratch: Scratch, servers: number, seconds: number, log: (s: string) => void): Promise<Measurement[]> {
  const home = await scratch.dir('daemon');
  const names = Array.from({ length: servers }, (_, i) => `bench_d${String(i + 1).padStart(2, '0')}`);
  const config = await writeBarmantsConfig(
    bc,
    home,
    names.map((n) => ({ name: n, streaming: true, slotName: n, archiverName: n })),
  );
  const child = spawn(process.execPath, barmantsArgs(config, 'daemon'), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8192)));
  let exited: string | null = null;
  child.on('exit', (code, signal) => (exited = `exited ${signal ?? code}`));
  try {
    const t0 = Date.now();
    await waitFor(
      `${servers} receivers of the daemon to stream`,
      async () => {
        if (exited) throw new Error(`daemon ${exited}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
        const [r] = await bc.cluster.sql<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name LIKE 'bench\\_d%' AND state = 'streaming'`,
        );
        return r!.n === servers;
      },
      120_000,
      250,
    );
    const startupS = (Date.now() - t0) / 1000;
    log(`daemon: ${servers} receivers streaming after ${startupS.toFixed(1)} s; measuring ${seconds} s idle`);
    // Let start-up garbage be collected before the window opens.
    await sleep(2000);
    const first = treeSample(child.pid!);
    const rss: number[] = [first.rssKb / 1024];
    const tEnd = Date.now() + seconds * 1000;
    while (Date.now() < tEnd) {
      await sleep(500);
      if (exited) throw new Error(`daemon ${exited} during the window: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
      rss.push(treeSample(child.pid!).rssKb / 1024);
    }
    const last = treeSample(child.pid!);
    const procs = processTree(child.pid!).length;
    const cpuS = last.cpuS - first.cpuS;
    return [
      { section: 'daemon', name: `start-up until ${servers} receivers stream`, unit: 's', values: [startupS] },
      { section: 'daemon', name: `RSS with ${servers} idle streaming servers`, unit: 'MB', values: rss, note: `sum over ${procs} process(es), sampled every 0.5 s for ${seconds} s; target ≤ 150 MB` },
      { section: 'daemon', name: `CPU over ${seconds} s idle`, unit: 's', values: [cpuS], note: `${((cpuS / seconds) * 100).toFixed(1)} % of one core` },
    ];
  } finally {
    await stop(child);
    for (const n of names) await dropSlot(bc, n);
    await rm(home, { recursive: true, force: true });
  }
}
