// Helpers for the daemon tests: a configuration for one scheduled server, the built CLI's `daemon`
// as a child process (as systemd runs it), its metrics endpoint read through a real Prometheus
// parser, the catalog opened read-only beside it, and the two PostgreSQL majors the multi-server
// tests use.
import { versionsUnderTest, type Cluster, type PgMajor } from '../../harness/index.js';
import { waitFor, writeTestConfig, type TestConfig } from '../../helpers/config.js';
import { Catalog, CatalogError } from '../../../packages/barmants/src/catalog/index.js';
import { catalogPath } from '../../../packages/barmants/src/repository/index.js';
import { Scrape } from '../../unit/daemon/prometheus.js';
import { startCli } from '../wal/helpers.js';

export { Scrape };

/** Two majors from BARMANTS_TEST_PG_VERSIONS (15 and 17 when they are in it); one if only one is. */
export function twoVersions(): [PgMajor, PgMajor] {
  const vs = versionsUnderTest();
  const a = vs.includes(15) ? 15 : vs[0]!;
  const rest = vs.filter((v) => v !== a);
  const b = rest.includes(17) ? 17 : (rest[rest.length - 1] ?? a);
  return [a, b];
}

/**
 * `barmants.conf` for a daemon serving `cluster` alone: the streaming receiver on its own slot,
 * backups on `schedule` (cron, with seconds), the maintenance loop every 2 seconds and `graceSec`
 * of shutdown grace. `options` (server section) and `global` add to it or override it.
 */
export function writeDaemonConfig(
  cluster: Cluster,
  o: { schedule: string; graceSec: number; options?: Record<string, string | number>; global?: Record<string, string> },
): Promise<TestConfig> {
  return writeTestConfig(cluster, {
    options: {
      streaming_archiver: 'on',
      slot_name: 'barmants',
      create_slot: 'auto',
      backup_schedule: o.schedule,
      shutdown_grace_period: `${o.graceSec} seconds`,
      ...o.options,
    },
    global: { maintenance_interval: '2 seconds', ...o.global },
  });
}

export interface DaemonRun {
  child: ReturnType<typeof startCli>['child'];
  stderr: () => string;
  exited: Promise<number | null>;
  /** http://127.0.0.1:PORT, from the daemon's own log line (metrics_listen = 127.0.0.1:0) */
  metricsUrl: string | null;
}

/** Starts `barmants -c CONFIG daemon` and waits until its loop runs (and its signal handlers are in). */
export async function startDaemon(configPath: string, opts: { metrics?: boolean } = {}): Promise<DaemonRun> {
  const d = startCli(['-c', configPath, 'daemon']);
  let exit: number | null | undefined;
  void d.exited.then((c) => (exit = c));
  await waitFor(() => {
    if (exit !== undefined) throw new Error(`daemon exited with ${exit} during start-up:\n${d.stderr().slice(-3000)}`);
    return /barmants daemon started/.test(d.stderr());
  }, 'daemon start-up', 30_000);
  let metricsUrl: string | null = null;
  if (opts.metrics) metricsUrl = /serving Prometheus metrics on (http:\/\/\S+)\/metrics/.exec(d.stderr())?.[1] ?? null;
  return { ...d, metricsUrl };
}

/** SIGTERM; resolves with the exit status (null if it had to be killed after `timeoutMs`). */
export async function stopDaemon(d: DaemonRun, timeoutMs = 30_000): Promise<number | null | 'timeout'> {
  if (d.child.exitCode !== null || d.child.signalCode !== null) return d.child.exitCode;
  d.child.kill('SIGTERM');
  const r = await Promise.race([d.exited, new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), timeoutMs).unref())]);
  if (r === 'timeout') d.child.kill('SIGKILL');
  return r;
}

export async function scrape(url: string): Promise<Scrape> {
  const res = await fetch(`${url}/metrics`);
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`);
  return new Scrape(await res.text());
}

/**
 * The daemon's catalog, read-only, once the daemon has created it and migrated its schema (the
 * file exists, empty, a moment before: opening it read-only then fails as 'catalog-outdated').
 */
export async function openCatalog(home: string): Promise<Catalog> {
  return waitFor(() => {
    try {
      return Catalog.open(catalogPath(home), { readonly: true });
    } catch (err) {
      if (err instanceof CatalogError && (err.kind === 'catalog-open' || err.kind === 'catalog-outdated')) return null;
      throw err;
    }
  }, 'catalog.db created and migrated', 30_000);
}

/** Walsenders of barmants' receiver on `cluster` that are streaming. */
export async function streamingReceivers(cluster: Cluster, appName = 'barmants_receive_wal'): Promise<number> {
  const rows = await cluster.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`, [appName]);
  return rows[0]!.n;
}

/** Lines of the daemon's stderr matching `re`. */
export function logLines(d: DaemonRun, re: RegExp): string[] {
  return d.stderr().split('\n').filter((l) => re.test(l));
}
