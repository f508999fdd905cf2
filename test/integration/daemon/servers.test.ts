/*
 * One `barmants daemon` (built CLI, child process) for several servers on two PostgreSQL majors:
 * every receiver streams and /metrics says so (read with a real Prometheus parser); SIGHUP reopens
 * log_file for logrotate and adds a server; one server's PostgreSQL stops: the others keep
 * archiving while its receiver retries with backoff (log, heartbeat, metrics) and catches up
 * without a gap once it is back; SIGHUP removes a server and its receiver lets go of the server.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { startCluster, type Cluster } from '../../harness/index.js';
import { waitFor, writeTestConfig, type TestConfig } from '../../helpers/config.js';
import type { Catalog } from '../../../packages/barmants/src/catalog/index.js';
import { writeAndSwitch } from '../wal/helpers.js';
import { logLines, openCatalog, scrape, startDaemon, stopDaemon, streamingReceivers, twoVersions, type DaemonRun } from './helpers.js';

const [V1, V2] = twoVersions();
const RECEIVER = { streaming_archiver: 'on', slot_name: 'barmants', create_slot: 'auto', wal_flush_interval: '100 ms' };

describe(`barmants daemon with three servers on PostgreSQL ${V1} and ${V2}`, () => {
  const clusters: Record<'alpha' | 'beta' | 'gamma', Cluster> = {} as never;
  let cfg: TestConfig;
  let home: string;
  let logFile: string;
  let daemon: DaemonRun;
  let catalog: Catalog;

  const writeConfig = (servers: ('beta' | 'gamma')[]) =>
    writeTestConfig(clusters.alpha, {
      server: 'alpha',
      home,
      options: RECEIVER,
      global: { log_file: logFile, metrics_listen: '127.0.0.1:0' },
      more: servers.map((name) => ({ name, cluster: clusters[name], options: RECEIVER })),
    });

  /** Writes WAL on `name`, switches, and waits until the closed segment is in the archive. */
  const archives = async (name: keyof typeof clusters): Promise<string> => {
    const seg = await writeAndSwitch(clusters[name]);
    await waitFor(() => catalog.getWalSegment(name, seg) !== null, `${seg} of ${name} archived`, 30_000);
    return seg;
  };
  const heartbeat = (name: string) => catalog.getHeartbeat(name);

  before(async () => {
    const [a, b, c] = await Promise.all([
      startCluster({ version: V1, walSegmentSizeMB: 1, name: 'alpha' }),
      startCluster({ version: V2, walSegmentSizeMB: 1, name: 'beta' }),
      startCluster({ version: V2, walSegmentSizeMB: 1, name: 'gamma' }),
    ]);
    Object.assign(clusters, { alpha: a, beta: b, gamma: c });
    cfg = await writeTestConfig(a, { server: 'alpha' });
    home = cfg.home;
    logFile = join(home, 'log', 'barmants.log');
    await mkdir(join(home, 'log'));
    await writeConfig(['beta']);
    daemon = await startDaemon(cfg.path, { metrics: true });
    catalog = await openCatalog(home);
  });

  after(async () => {
    if (daemon) await stopDaemon(daemon);
    catalog?.close();
    await Promise.all(Object.values(clusters).map((c) => c.destroy()));
    await cfg?.cleanup();
  });

  test('every receiver streams, on both majors, and /metrics and /healthz say so', async () => {
    assert.ok(daemon.metricsUrl, `metrics URL in the log:\n${daemon.stderr()}`);
    for (const name of ['alpha', 'beta'] as const) {
      await waitFor(async () => (await streamingReceivers(clusters[name])) === 1, `${name}'s receiver streaming`, 30_000);
      await archives(name);
    }
    const s = await scrape(daemon.metricsUrl!);
    for (const server of ['alpha', 'beta']) {
      assert.equal(s.value('barmants_wal_receiver_state', { server, state: 'streaming' }), 1, `${server} streaming in /metrics`);
      assert.ok(s.value('barmants_wal_archived_segments_total', { server })! >= 1, `${server}: segments archived since the start`);
      assert.ok(s.value('barmants_wal_segments', { server })! >= 1);
      assert.ok(s.value('barmants_wal_receiver_flush_lag_bytes', { server })! >= 0);
      assert.equal(s.value('barmants_wal_gaps', { server }), 0);
    }
    assert.equal(s.value('barmants_servers'), 2);
    assert.ok(s.value('process_resident_memory_bytes')! > 10 * 1024 * 1024, 'process RSS');
    const h = await fetch(`${daemon.metricsUrl}/healthz`);
    assert.equal(h.status, 200);
    assert.deepEqual(await h.json(), { status: 'ok', receivers: { alpha: 'streaming', beta: 'streaming' } });
  });

  test('SIGHUP after logrotate renamed log_file: new lines go to a new file at the old path; a server added starts', async () => {
    await waitFor(() => existsSync(logFile), 'log_file written', 10_000);
    await rename(logFile, `${logFile}.1`);
    await writeConfig(['beta', 'gamma']);
    daemon.child.kill('SIGHUP');
    await waitFor(() => /configuration reloaded: 1 added \(gamma\)/.test(daemon.stderr()), 'reload adding gamma', 30_000);
    await waitFor(async () => (await streamingReceivers(clusters.gamma)) === 1, "gamma's receiver streaming", 30_000);
    await archives('gamma');

    const rotated = await readFile(`${logFile}.1`, 'utf8');
    const fresh = await waitFor(async () => {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      return /\[gamma\] daemon: starting the WAL receiver/.test(text) ? text : null;
    }, 'the new log file', 10_000);
    assert.match(rotated, /barmants daemon started/);
    assert.doesNotMatch(rotated, /configuration reloaded/, 'nothing after the SIGHUP in the renamed file');
    assert.match(fresh, /^\S+ \S+ INFO  daemon: received SIGHUP: log file reopened/, 'the new file starts with the SIGHUP line');
    assert.match(fresh, /configuration reloaded: 1 added \(gamma\)/);
    assert.doesNotMatch(fresh, /barmants daemon started/);
    assert.equal(statSync(logFile).mode & 0o777, 0o600);
    const s = await scrape(daemon.metricsUrl!);
    assert.equal(s.value('barmants_servers'), 3);
  });

  test('one PostgreSQL stopped: the others keep archiving, its receiver retries with backoff, then catches up without a gap', async () => {
    const beta = clusters.beta;
    const before = catalog.lastWalSegment('beta')!;
    await beta.stop('fast');
    try {
      await waitFor(() => heartbeat('beta')?.state === 'retrying', "beta's heartbeat says retrying", 30_000);
      assert.ok(heartbeat('beta')!.message, 'the heartbeat carries the error');
      // The others are not held up.
      await archives('alpha');
      await archives('gamma');
      await archives('alpha');
      // Backoff: several retries, spaced out (0.5 s doubling, with jitter), none of them blocking the rest.
      await waitFor(() => logLines(daemon, /\[beta\] receive-wal: streaming interrupted/).length >= 3, 'three retries of beta logged', 30_000);
      const s = await scrape(daemon.metricsUrl!);
      assert.equal(s.value('barmants_wal_receiver_state', { server: 'beta', state: 'backoff' }), 1, 'beta in backoff in /metrics');
      assert.equal(s.value('barmants_wal_receiver_state', { server: 'alpha', state: 'streaming' }), 1);
      assert.equal(s.value('barmants_wal_receiver_state', { server: 'gamma', state: 'streaming' }), 1);
      assert.equal(daemon.child.exitCode, null, 'daemon still running');
    } finally {
      await beta.start();
    }
    await waitFor(() => heartbeat('beta')?.state === 'streaming', 'beta streaming again', 60_000);
    const seg = await archives('beta');
    const first = catalog.firstWalSegment('beta')!;
    const last = catalog.getWalSegment('beta', seg)!;
    assert.ok(last.segno > before.segno);
    assert.deepEqual(catalog.missingSegments('beta', first.timeline, first.segno, last.segno), [], 'no gap across the outage');
  });

  test('SIGHUP removing a server stops its receiver; the others go on', async () => {
    await writeConfig(['beta']);
    daemon.child.kill('SIGHUP');
    await waitFor(() => /configuration reloaded: 1 removed \(gamma\)/.test(daemon.stderr()), 'reload removing gamma', 30_000);
    assert.match(daemon.stderr(), /\[gamma\] daemon: stopping the WAL receiver: removed from the configuration/);
    await waitFor(async () => (await streamingReceivers(clusters.gamma)) === 0, "gamma's walsender gone", 30_000);
    await archives('alpha');
    await archives('beta');
    const s = await scrape(daemon.metricsUrl!);
    assert.deepEqual(s.labelValues('barmants_wal_receiver_state', 'server'), ['alpha', 'beta']);
    assert.deepEqual(s.labelValues('barmants_wal_archived_segments_total', 'server'), ['alpha', 'beta']);
    assert.equal(await stopDaemon(daemon), 0, daemon.stderr().slice(-3000));
  });
});
