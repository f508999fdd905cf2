// Base backup section: `barmants backup` against pg_basebackup on the same cluster, uncompressed
// (pg_basebackup -Fp) and for each codec (pg_basebackup -Ft --compress=client-<codec>), whole-process
// wall time, throughput over the data directory's size, stored size and peak RSS.

import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { alternate, type Comparison, type MetricSpec } from './report.js';
import { runMeasured, treeBytes } from './measure.js';
import { barmantsArgs, pgTool, writeBarmantsConfig, type BenchCluster, type Scratch } from './setup.js';

export const BACKUP_METRICS: MetricSpec[] = [
  { key: 'wallS', label: 'wall', unit: 's', digits: 2 },
  { key: 'mbPerS', label: 'throughput', unit: 'MB/s', digits: 0 },
  { key: 'storedMB', label: 'stored', unit: 'MB', digits: 1 },
  { key: 'peakRssMB', label: 'peak RSS', unit: 'MB', digits: 0 },
  { key: 'cpuS', label: 'CPU', unit: 's', digits: 2 },
];

const MB = 1e6;

/** What a base backup reads: the data directory without pg_wal (both tools skip it with -X none). */
export async function clusterBytes(bc: BenchCluster): Promise<number> {
  return treeBytes(bc.cluster.dataDir, ['pg_wal', 'postmaster.pid', 'postmaster.opts']);
}

export async function benchBackups(bc: BenchCluster, scratch: Scratch, codecs: string[], rounds: number, log: (s: string) => void): Promise<Comparison[]> {
  const sourceBytes = await clusterBytes(bc);
  log(`backup: data directory ${(sourceBytes / MB).toFixed(0)} MB (without pg_wal)`);
  const out: Comparison[] = [];
  for (const codec of codecs) {
    let ourHome = '';
    let pbbDir = '';
    const plain = codec === 'none';
    // No --no-sync: pg_basebackup fsyncs its output by default and barmants always does.
    const pbbArgs = plain
      ? ['-Fp', '-X', 'none', '--checkpoint=fast']
      : ['-Ft', '-X', 'none', '--checkpoint=fast', `--compress=client-${codec}`];
    const cmp = await alternate(
      {
        section: 'backup',
        title: `base backup, ${plain ? 'uncompressed' : codec}`,
        metrics: BACKUP_METRICS,
        baseline: 1,
        ratioMetrics: ['wallS'],
      },
      [
        {
          name: `barmants backup${plain ? '' : ` (backup_compression = ${codec})`}`,
          command: `barmants backup bench${plain ? '' : ` [backup_compression = ${codec}]`}`,
          run: async () => {
            ourHome = await scratch.dir(`home-${codec}`);
            const config = await writeBarmantsConfig(bc, ourHome, [{ name: 'bench', backupCompression: codec }]);
            const r = await runMeasured(process.execPath, barmantsArgs(config, 'backup', 'bench'));
            const stored = await treeBytes(join(ourHome, 'bench', 'base'));
            if (stored === 0) throw new Error(`no backup under ${ourHome}/bench/base: ${r.stderr.trim().split('\n').pop() ?? ''}`);
            return metrics(r, sourceBytes, stored);
          },
          cleanup: async () => {
            if (ourHome) await rm(ourHome, { recursive: true, force: true });
          },
        },
        {
          name: `pg_basebackup ${pbbArgs.join(' ')}`,
          command: `pg_basebackup -D DIR ${pbbArgs.join(' ')}`,
          run: async () => {
            pbbDir = join(await scratch.dir(`pbb-${codec}`), 'backup');
            const r = await runMeasured(pgTool('pg_basebackup'), ['-D', pbbDir, ...pbbArgs, ...bc.hostArgs, '-w'], { env: bc.replEnv });
            return metrics(r, sourceBytes, await treeBytes(pbbDir));
          },
          cleanup: async () => {
            if (pbbDir) await rm(join(pbbDir, '..'), { recursive: true, force: true });
          },
        },
      ],
      rounds,
      log,
    );
    out.push(cmp);
  }
  return out;
}

function metrics(r: { wallS: number; maxRssKb: number | null; cpuS: number | null }, sourceBytes: number, storedBytes: number) {
  return {
    wallS: r.wallS,
    mbPerS: sourceBytes / MB / r.wallS,
    storedMB: storedBytes / MB,
    peakRssMB: r.maxRssKb === null ? null : r.maxRssKb / 1024,
    cpuS: r.cpuS,
  };
}
