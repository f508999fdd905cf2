// `npm run bench`: barmants side by side with pg_basebackup, pg_receivewal (and Barman when asked)
// on one PostgreSQL 15 cluster loaded with pgbench; contenders alternate A B A B, results are medians,
// min–max and pair-by-pair ratios, printed and written to bench/results/<date>-<host>.json.

import { parseArgs } from 'node:util';
import { benchBackups } from './backup.js';
import { prepareBarman, type BarmanSetup } from './barman.js';
import { benchCatalog } from './catalog.js';
import { benchDaemon, daemonMissing } from './daemon.js';
import { benchLibrary } from './library.js';
import { benchRecover } from './recover.js';
import { describeMachine, renderAll, writeResults, type BenchResults } from './report.js';
import { checkTools, prepareCluster, REPO_ROOT, Scratch, type BenchCluster } from './setup.js';
import { benchWal } from './wal.js';

const SECTIONS = ['backup', 'library', 'wal', 'recover', 'catalog', 'daemon'] as const;
type Section = (typeof SECTIONS)[number];

const USAGE = `usage: npm run bench -- [options]
  --scale N            pgbench -i -s N for the cluster (default 50, about 750 MB)
  --pairs N            rounds of alternating contenders (default 3)
  --only LIST          comma-separated sections: ${SECTIONS.join(',')} (default all);
                       library = pg-replication's BASE_BACKUP alone against pg_basebackup
  --codecs LIST        base backup codecs (default none,gzip,lz4,zstd)
  --wal-seconds N      pgbench duration of each WAL streaming run (default 60)
  --daemon-servers N   servers the daemon streams from (default 20)
  --daemon-seconds N   idle window over which the daemon is measured (default 30)
  --catalog-segments N WAL rows in the catalog section (default 1000000)
  --catalog-backups N  backups in the catalog section (default 1000)
  --no-start           recovery: do not start a server on the restored directory
  --with-barman        also time \`barman recover\` (apt-get install -y barman if missing)
  --no-write           do not write bench/results/*.json`;

function positiveInt(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error(`--${name} ${JSON.stringify(v)}: expected a positive integer`);
  return Number(v);
}

function parse() {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((a) => a !== '--'),
    options: {
      scale: { type: 'string' },
      pairs: { type: 'string' },
      only: { type: 'string' },
      codecs: { type: 'string' },
      'wal-seconds': { type: 'string' },
      'daemon-servers': { type: 'string' },
      'daemon-seconds': { type: 'string' },
      'catalog-segments': { type: 'string' },
      'catalog-backups': { type: 'string' },
      'no-start': { type: 'boolean', default: false },
      'with-barman': { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  const only = (values.only ?? SECTIONS.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of only) if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`--only: unknown section ${JSON.stringify(s)} (expected ${SECTIONS.join(', ')})`);
  const codecs = (values.codecs ?? 'none,gzip,lz4,zstd').split(',').map((s) => s.trim()).filter(Boolean);
  for (const c of codecs) if (!['none', 'gzip', 'lz4', 'zstd'].includes(c)) throw new Error(`--codecs: unknown codec ${JSON.stringify(c)}`);
  return {
    help: values.help,
    scale: positiveInt('scale', values.scale, 50),
    pairs: positiveInt('pairs', values.pairs, 3),
    only: new Set(only as Section[]),
    codecs,
    walSeconds: positiveInt('wal-seconds', values['wal-seconds'], 60),
    daemonServers: positiveInt('daemon-servers', values['daemon-servers'], 20),
    daemonSeconds: positiveInt('daemon-seconds', values['daemon-seconds'], 30),
    catalogSegments: positiveInt('catalog-segments', values['catalog-segments'], 1_000_000),
    catalogBackups: positiveInt('catalog-backups', values['catalog-backups'], 1000),
    start: !values['no-start'],
    withBarman: values['with-barman'],
    write: !values['no-write'],
  };
}

function log(s: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
}

async function main(): Promise<number> {
  let opts: ReturnType<typeof parse>;
  try {
    opts = parse();
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const missing = checkTools();
  if (missing.length > 0) {
    process.stderr.write(`bench: missing: ${missing.join(', ')}\n`);
    return 2;
  }
  const scratch = new Scratch();
  // Ctrl-C: remove the scratch dir, then exit so the harness's exit handler stops the cluster.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`${sig}: cleaning up`);
      scratch.removeAllSync();
      process.exit(130);
    });
  }
  const res: BenchResults = {
    startedAt: new Date().toISOString(),
    options: { ...opts, only: [...opts.only] },
    machine: {},
    comparisons: [],
    measurements: [],
    skipped: [],
    notes: [],
  };
  let bc: BenchCluster | null = null;
  let barman: BarmanSetup | null = null;
  const needsCluster = [...opts.only].some((s) => s !== 'catalog');
  // Every section runs in its own try: one that breaks is reported and the others still run.
  const section = async (name: Section, fn: () => Promise<void>) => {
    if (!opts.only.has(name)) return;
    log(`section ${name}`);
    try {
      await fn();
    } catch (e) {
      log(`section ${name} failed: ${(e as Error).message}`);
      res.skipped.push({ section: name, reason: `failed: ${(e as Error).message.split('\n')[0]}` });
    }
  };
  try {
    await scratch.dir('machine');
    res.machine = describeMachine(scratch.path!);
    if (needsCluster) {
      log(`preparing a PostgreSQL 15 cluster, pgbench scale ${opts.scale}`);
      bc = await prepareCluster(opts.scale, log);
      const [size] = await bc.cluster.sql<{ b: string }>(`SELECT pg_database_size('postgres')::text AS b`);
      res.cluster = { version: 15, pgbenchScale: opts.scale, databaseBytes: Number(size!.b) };
    }
    await section('backup', async () => {
      res.comparisons.push(...(await benchBackups(bc!, scratch, opts.codecs, opts.pairs, log)));
    });
    await section('library', async () => {
      res.comparisons.push(...(await benchLibrary(bc!, scratch, opts.pairs, log)));
    });
    await section('wal', async () => {
      res.comparisons.push(await benchWal(bc!, scratch, opts.walSeconds, opts.pairs, log));
    });
    await section('recover', async () => {
      const extra = [];
      if (opts.withBarman) {
        try {
          barman = await prepareBarman(bc!, scratch, log);
          extra.push(barman.recoverer);
        } catch (e) {
          log(`barman: ${(e as Error).message}`);
          res.skipped.push({ section: 'recover', reason: `barman recover: ${(e as Error).message.split('\n')[0]}` });
        }
      } else {
        res.skipped.push({ section: 'recover', reason: 'barman recover: not asked for (--with-barman)' });
      }
      try {
        res.comparisons.push(await benchRecover(bc!, scratch, opts.pairs, opts.start, extra, log));
      } finally {
        await (barman as BarmanSetup | null)?.teardown();
      }
    });
    await section('catalog', async () => {
      res.measurements.push(
        ...(await benchCatalog(scratch, { segments: opts.catalogSegments, backups: opts.catalogBackups, iterations: Math.max(5, opts.pairs * 3) }, log)),
      );
    });
    await section('daemon', async () => {
      const why = await daemonMissing();
      if (why) {
        res.skipped.push({ section: 'daemon', reason: why });
        return;
      }
      res.measurements.push(...(await benchDaemon(bc!, scratch, opts.daemonServers, opts.daemonSeconds, log)));
    });
  } catch (e) {
    res.notes.push(`aborted: ${(e as Error).message.split('\n')[0]}`);
    log(`aborted: ${(e as Error).stack ?? (e as Error).message}`);
  } finally {
    await bc?.cluster.destroy().catch((e: Error) => log(`cluster destroy: ${e.message}`));
    await scratch.removeAll().catch((e: Error) => log(`temp dir removal: ${e.message}`));
  }
  res.finishedAt = new Date().toISOString();
  res.notes.push('MB = 10^6 bytes; wall times are whole-process, from spawn to exit; ratios are contender / baseline within the same round.');
  process.stdout.write(`\n# barmants bench — ${res.startedAt} on ${String(res.machine.hostname)} (${String(res.machine.cpuModel)}, ${String(res.machine.cores)} cores)\n\n`);
  process.stdout.write(renderAll(res) + '\n');
  if (opts.write) log(`results written to ${writeResults(REPO_ROOT, res)}`);
  return res.notes.some((n) => n.startsWith('aborted')) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
