// Replication library section: packages/pg-replication's BASE_BACKUP alone (library-client.ts, no
// barmants around it) against pg_basebackup on the same cluster, to disk (pg_basebackup -Fp, both
// fsync the tree at the end) and to a null sink (pg_basebackup -Ft -D - into /dev/null; the client
// discards every member). Whole-process wall time, throughput over the data directory's size, peak
// RSS, CPU, and the client's own in-process time (from its first line, so without Node's boot).

import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { clusterBytes } from './backup.js';
import { alternate, type Comparison, type MetricSpec } from './report.js';
import { runMeasured, type MeasuredRun } from './measure.js';
import { pgTool, REPO_ROOT, type BenchCluster, type Scratch } from './setup.js';

export const LIBRARY_METRICS: MetricSpec[] = [
  { key: 'wallS', label: 'wall', unit: 's', digits: 2 },
  { key: 'mbPerS', label: 'throughput', unit: 'MB/s', digits: 0 },
  { key: 'inProcS', label: 'in-process', unit: 's', digits: 2 },
  { key: 'syncS', label: 'of which fsync', unit: 's', digits: 2 },
  { key: 'peakRssMB', label: 'peak RSS', unit: 'MB', digits: 0 },
  { key: 'cpuS', label: 'CPU', unit: 's', digits: 2 },
];

const MB = 1e6;
const LIBRARY_DIST = join(REPO_ROOT, 'packages', 'pg-replication', 'dist', 'index.js');
const CLIENT_SRC = join(REPO_ROOT, 'scripts', 'bench', 'library-client.ts');
/** What pg_basebackup is asked for in both comparisons (-X none: neither side copies WAL). */
const PBB_COMMON = ['-X', 'none', '--checkpoint=fast'];

/** What library-client.ts prints on success. */
interface ClientReport {
  archiveBytes: number;
  fileBytes: number;
  files: number;
  bootMs: number;
  importMs: number;
  connectMs: number;
  streamMs: number;
  streamCpuMs: number;
  streamSysMs: number;
  syncMs: number;
  inProcessMs: number;
}

/**
 * library-client.ts as plain JavaScript in the scratch dir, its `pg-replication` import pointing at
 * the built package: the measured process is `node client.mjs`, with no TypeScript loader in it.
 */
async function buildClient(scratch: Scratch): Promise<string> {
  const src = await readFile(CLIENT_SRC, 'utf8');
  const js = ts.transpileModule(src, {
    compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
    fileName: CLIENT_SRC,
  }).outputText;
  const specifier = /import\((['"])pg-replication\1\)/;
  if (!specifier.test(js)) throw new Error(`${CLIENT_SRC}: no import('pg-replication') to point at ${LIBRARY_DIST}`);
  const file = join(await scratch.dir('library-client'), 'library-client.mjs');
  await writeFile(file, js.replace(specifier, `import(${JSON.stringify(pathToFileURL(LIBRARY_DIST).href)})`));
  return file;
}

export async function benchLibrary(bc: BenchCluster, scratch: Scratch, rounds: number, log: (s: string) => void): Promise<Comparison[]> {
  const [spc] = await bc.cluster.sql<{ n: string }>(`SELECT count(*)::text AS n FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')`);
  if (Number(spc?.n ?? 0) > 0) throw new Error('the cluster has tablespaces: pg_basebackup -D - and the bench client need a single data directory');
  const client = await buildClient(scratch);
  const sourceBytes = await clusterBytes(bc);
  log(`library: data directory ${(sourceBytes / MB).toFixed(0)} MB (without pg_wal); client ${client}`);
  const conninfo = `host=${bc.cluster.host} port=${bc.cluster.port}`;

  const runClient = async (mode: 'null' | 'disk', dest?: string) => {
    const r = await runMeasured(process.execPath, [client, mode, conninfo, ...(dest ? [dest] : [])], { env: bc.replEnv });
    const rep = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as ClientReport;
    if (!(rep.archiveBytes > 0)) throw new Error(`library client printed no report: ${r.stdout.slice(-200)}`);
    log(
      `    client ${mode}: boot ${rep.bootMs.toFixed(0)} ms, import ${rep.importMs.toFixed(0)} ms, connect ${rep.connectMs.toFixed(0)} ms, ` +
        `stream ${rep.streamMs.toFixed(0)} ms (${(rep.archiveBytes / MB / (rep.streamMs / 1000)).toFixed(0)} MB/s of tar, ${rep.streamCpuMs.toFixed(0)} ms CPU, ${rep.streamSysMs.toFixed(0)} in the kernel), fsync ${rep.syncMs.toFixed(0)} ms, ${rep.files} files`,
    );
    return {
      ...metrics(r, sourceBytes),
      inProcS: rep.inProcessMs / 1000,
      syncS: mode === 'disk' ? rep.syncMs / 1000 : null,
      // In the JSON only: where the in-process time goes.
      bootS: rep.bootMs / 1000,
      importS: rep.importMs / 1000,
      connectS: rep.connectMs / 1000,
      streamS: rep.streamMs / 1000,
      streamCpuS: rep.streamCpuMs / 1000,
      streamSysS: rep.streamSysMs / 1000,
      archiveMB: rep.archiveBytes / MB,
      files: rep.files,
    };
  };

  const out: Comparison[] = [];
  {
    let ourDir = '';
    let pbbDir = '';
    const pbbArgs = ['-Fp', ...PBB_COMMON];
    out.push(
      await alternate(
        {
          section: 'library',
          title: 'replication library, base backup to disk',
          metrics: LIBRARY_METRICS,
          baseline: 1,
          ratioMetrics: ['wallS', 'mbPerS'],
        },
        [
          {
            name: 'pg-replication baseBackup → files + fsync',
            command: `node library-client.mjs disk '${conninfo}' DIR`,
            run: async () => {
              ourDir = join(await scratch.dir('lib-disk'), 'backup');
              return runClient('disk', ourDir);
            },
            cleanup: async () => {
              if (ourDir) await rm(join(ourDir, '..'), { recursive: true, force: true });
            },
          },
          {
            name: `pg_basebackup ${pbbArgs.join(' ')}`,
            command: `pg_basebackup -D DIR ${pbbArgs.join(' ')}`,
            run: async () => {
              pbbDir = join(await scratch.dir('pbb-disk'), 'backup');
              const r = await runMeasured(pgTool('pg_basebackup'), ['-D', pbbDir, ...pbbArgs, ...bc.hostArgs, '-w'], { env: bc.replEnv });
              return { ...metrics(r, sourceBytes), inProcS: null, syncS: null };
            },
            cleanup: async () => {
              if (pbbDir) await rm(join(pbbDir, '..'), { recursive: true, force: true });
            },
          },
        ],
        rounds,
        log,
      ),
    );
  }
  {
    const pbbArgs = ['-D', '-', '-Ft', ...PBB_COMMON];
    out.push(
      await alternate(
        {
          section: 'library',
          title: 'replication library, base backup to a null sink',
          metrics: LIBRARY_METRICS,
          baseline: 1,
          ratioMetrics: ['wallS', 'mbPerS'],
        },
        [
          {
            name: 'pg-replication baseBackup → discard',
            command: `node library-client.mjs null '${conninfo}'`,
            run: () => runClient('null'),
          },
          {
            name: `pg_basebackup ${pbbArgs.join(' ')} > /dev/null`,
            command: `pg_basebackup ${pbbArgs.join(' ')} > /dev/null`,
            run: async () => {
              // sh only redirects and execs: /usr/bin/time measures pg_basebackup itself.
              const r = await runMeasured('/bin/sh', ['-c', 'exec "$0" "$@" >/dev/null', pgTool('pg_basebackup'), ...pbbArgs, ...bc.hostArgs, '-w'], { env: bc.replEnv });
              return { ...metrics(r, sourceBytes), inProcS: null, syncS: null };
            },
          },
        ],
        rounds,
        log,
      ),
    );
  }
  return out;
}

function metrics(r: MeasuredRun, sourceBytes: number) {
  return {
    wallS: r.wallS,
    mbPerS: sourceBytes / MB / r.wallS,
    peakRssMB: r.maxRssKb === null ? null : r.maxRssKb / 1024,
    cpuS: r.cpuS,
  };
}
