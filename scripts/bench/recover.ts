// Recovery section: `barmants recover` of a plain and of a zstd backup into a fresh directory,
// against `cp -a` of a self-contained plain pg_basebackup copy (and `barman recover` when asked):
// wall time to a startable directory, then the time until a server started on it accepts connections.

import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startClusterFromDataDir } from '../../test/harness/index.js';
import { alternate, type Comparison, type ContenderSpec, type Metrics, type MetricSpec } from './report.js';
import { runMeasured, runQuiet, treeBytes } from './measure.js';
import { barmantsArgs, pgTool, writeBarmantsConfig, type BenchCluster, type Scratch } from './setup.js';

export const RECOVER_METRICS: MetricSpec[] = [
  { key: 'wallS', label: 'to startable dir', unit: 's', digits: 2 },
  { key: 'mbPerS', label: 'throughput', unit: 'MB/s', digits: 0 },
  { key: 'startS', label: 'start until connectable', unit: 's', digits: 2 },
  { key: 'peakRssMB', label: 'peak RSS', unit: 'MB', digits: 0 },
  { key: 'cpuS', label: 'CPU', unit: 's', digits: 2 },
];

const MB = 1e6;

export interface ExtraRecoverer {
  name: string;
  command: string;
  /** restores into dest; returns the measured process */
  restore: (dest: string) => Promise<{ wallS: number; maxRssKb: number | null; cpuS: number | null }>;
}

export async function benchRecover(
  bc: BenchCluster,
  scratch: Scratch,
  rounds: number,
  startServers: boolean,
  extra: ExtraRecoverer[],
  log: (s: string) => void,
): Promise<Comparison> {
  // Fixtures, made once: two DONE barmants backups (self-contained with --wal) and a plain copy.
  const home = await scratch.dir('recover-home');
  const config = await writeBarmantsConfig(bc, home, [
    { name: 'plain', backupCompression: 'none' },
    { name: 'zstd', backupCompression: 'zstd' },
  ]);
  const fixtureErrors = new Map<string, string>();
  for (const server of ['plain', 'zstd']) {
    try {
      await runQuiet(process.execPath, barmantsArgs(config, 'backup', server, '--wal', '--wait-timeout', '600'), { timeoutMs: 900_000 });
    } catch (e) {
      fixtureErrors.set(server, `fixture backup failed: ${(e as Error).message}`);
    }
  }
  const copySrc = join(await scratch.dir('recover-pbb'), 'data');
  try {
    // -X fetch: the copy holds the WAL it needs, so a cp -a of it is a startable directory.
    await runQuiet(pgTool('pg_basebackup'), ['-D', copySrc, '-Fp', '-X', 'fetch', '--checkpoint=fast', ...bc.hostArgs, '-w'], { env: bc.replEnv });
  } catch (e) {
    fixtureErrors.set('cp', `fixture pg_basebackup failed: ${(e as Error).message}`);
  }
  const sourceBytes = await treeBytes(copySrc);

  let dest = '';
  const after = async () => {
    if (dest) await rm(join(dest, '..'), { recursive: true, force: true });
    dest = '';
  };
  const restoreInto = async (prefix: string, restore: (d: string) => Promise<{ wallS: number; maxRssKb: number | null; cpuS: number | null }>): Promise<Metrics> => {
    dest = join(await scratch.dir(prefix), 'data');
    const r = await restore(dest);
    const m: Metrics = {
      wallS: r.wallS,
      mbPerS: sourceBytes / MB / r.wallS,
      peakRssMB: r.maxRssKb === null ? null : r.maxRssKb / 1024,
      cpuS: r.cpuS,
      startS: null,
    };
    if (startServers) m.startS = await timeStart(dest);
    return m;
  };
  const ours = (server: string): ContenderSpec => ({
    name: `barmants recover (${server === 'plain' ? 'uncompressed' : server} backup)`,
    command: `barmants recover ${server} latest DEST`,
    run: async () => {
      const err = fixtureErrors.get(server);
      if (err) throw new Error(err);
      return restoreInto(`recover-${server}`, (d) => runMeasured(process.execPath, barmantsArgs(config, 'recover', server, 'latest', d), { timeoutMs: 900_000 }));
    },
    cleanup: after,
  });
  const specs: ContenderSpec[] = [
    ours('plain'),
    ours('zstd'),
    ...extra.map(
      (x): ContenderSpec => ({ name: x.name, command: x.command, run: () => restoreInto('recover-extra', x.restore), cleanup: after }),
    ),
    {
      // barmants makes the restored files durable before it says the restore is done (one syncfs
      // per file system); cp -a leaves them in the page cache. This is the like-for-like copy.
      name: 'cp -a, then sync -f (durable, as barmants)',
      command: 'cp -a COPY DEST && sync -f DEST',
      run: async () => {
        const err = fixtureErrors.get('cp');
        if (err) throw new Error(err);
        return restoreInto('recover-cpsync', (d) => runMeasured('sh', ['-c', 'cp -a "$0" "$1" && sync -f "$1"', copySrc, d]));
      },
      cleanup: after,
    },
    {
      name: 'cp -a of a pg_basebackup -Fp -X fetch copy',
      command: 'cp -a COPY DEST',
      run: async () => {
        const err = fixtureErrors.get('cp');
        if (err) throw new Error(err);
        return restoreInto('recover-cp', (d) => runMeasured('cp', ['-a', copySrc, d]));
      },
      cleanup: after,
    },
  ];
  const cmp = await alternate(
    {
      section: 'recover',
      title: 'recovery to a startable directory',
      metrics: RECOVER_METRICS,
      baseline: specs.length - 1,
      ratioMetrics: ['wallS'],
    },
    specs,
    rounds,
    log,
  );
  await rm(home, { recursive: true, force: true });
  await rm(join(copySrc, '..'), { recursive: true, force: true });
  return cmp;
}

/** Start PostgreSQL on a restored directory; seconds until it accepts connections and left recovery. */
async function timeStart(dataDir: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  // keepDataDir: the contender's cleanup removes it (and its parent) either way.
  const c = await startClusterFromDataDir(dataDir, 15, { keepDataDir: true, waitRecoveryEnd: true, recoveryTimeoutMs: 300_000, name: 'bench-restored' });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  await c.destroy();
  return s;
}
