// The daemon's metrics without a server: metrics_listen parsing (loopback unless written), gauges
// computed from a synthetic catalog at scrape time, counters, and the HTTP endpoint, all read back
// through a real Prometheus text-format parser.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseListen } from '../../../packages/barmants/src/config/index.js';
import { DaemonMetrics, MetricsServer, receiverMetricState, splitListen } from '../../../packages/barmants/src/daemon/index.js';
import { nullLogger } from '../../../packages/barmants/src/log/index.js';
import { makeRepo, wal, type Repo } from '../maintenance/fixture.js';
import { Scrape } from './prometheus.js';

describe('metrics_listen', () => {
  test('a port alone binds loopback; an address is taken as written; names other than localhost are refused', () => {
    assert.equal(parseListen('9630'), '127.0.0.1:9630');
    assert.equal(parseListen(':9630'), '127.0.0.1:9630');
    assert.equal(parseListen('localhost:9630'), '127.0.0.1:9630');
    assert.equal(parseListen('127.0.0.2:0'), '127.0.0.2:0');
    assert.equal(parseListen('0.0.0.0:9630'), '0.0.0.0:9630');
    assert.equal(parseListen('[::1]:9630'), '[::1]:9630');
    assert.deepEqual(splitListen('[::1]:9630'), { host: '::1', port: 9630 });
    for (const bad of ['db.example.com:9630', '300.1.1.1:9630', '127.0.0.1:70000', '127.0.0.1:', '[zz]:1', '*:9630', '']) {
      assert.throws(() => parseListen(bad), /expected \[address:\]port/, bad);
    }
  });
});

describe('receiverMetricState', () => {
  const now = new Date('2026-11-30T12:00:00Z');
  test('folds the heartbeat states into four; a stale heartbeat is stopped', () => {
    const fresh = '2026-11-30T11:59:58Z';
    assert.equal(receiverMetricState('streaming', fresh, now), 'streaming');
    assert.equal(receiverMetricState('retrying', fresh, now), 'backoff');
    assert.equal(receiverMetricState('backoff', fresh, now), 'backoff');
    assert.equal(receiverMetricState('starting', fresh, now), 'starting');
    assert.equal(receiverMetricState('failed', fresh, now), 'stopped');
    assert.equal(receiverMetricState('streaming', '2026-11-30T11:59:00Z', now), 'stopped');
    assert.equal(receiverMetricState(null, null, now), 'stopped');
  });
});

describe('DaemonMetrics on a synthetic catalog', () => {
  const repos: Repo[] = [];
  after(async () => { for (const r of repos) await r.cleanup(); });

  test('gauges from the catalog at scrape time, counters of what happened since the start', async () => {
    const repo = await makeRepo({ streaming_archiver: 'on' });
    repos.push(repo);
    const now = new Date('2026-11-30T12:00:00Z');
    await repo.addBackup({ backupId: '20261128T010000', status: 'DONE', beginWal: wal(10), endWal: wal(10), beginTime: '2026-11-28T01:00:00+00:00', endTime: '2026-11-28T01:00:00+00:00', size: 1000 });
    await repo.addBackup({ backupId: '20261129T010000', status: 'DONE', beginWal: wal(12), endWal: wal(12), beginTime: '2026-11-29T11:00:00+00:00', endTime: '2026-11-30T11:00:00+00:00', size: 4242 });
    await repo.addBackup({ backupId: '20261130T010000', status: 'FAILED', error: 'boom' });
    for (const n of [10, 11, 12]) await repo.addSegment(n, { bytes: 1024 });
    repo.catalog.setHeartbeat({ server: 'pg', pid: 1, state: 'streaming', receivedLsn: 5000n, flushedLsn: 3000n, timeline: 1, message: null, updatedAt: '2026-11-30T11:59:59Z' });
    let servers = [repo.server];
    const metrics = new DaemonMetrics({ catalog: repo.catalog, servers: () => servers, now: () => now, slowRefreshMs: 0 });

    let s = new Scrape(await metrics.render());
    assert.equal(s.family('barmants_last_backup_age_seconds').type, 'GAUGE');
    assert.equal(s.value('barmants_last_backup_age_seconds', { server: 'pg' }), 3600);
    assert.equal(s.value('barmants_last_backup_size_bytes', { server: 'pg' }), 4242);
    assert.equal(s.value('barmants_backups', { server: 'pg', status: 'DONE' }), 2);
    assert.equal(s.value('barmants_backups', { server: 'pg', status: 'FAILED' }), 1);
    assert.equal(s.value('barmants_backups', { server: 'pg', status: 'STARTED' }), 0);
    assert.equal(s.value('barmants_failed_backups', { server: 'pg' }), 1);
    assert.equal(s.value('barmants_wal_receiver_state', { server: 'pg', state: 'streaming' }), 1);
    assert.equal(s.value('barmants_wal_receiver_state', { server: 'pg', state: 'backoff' }), 0);
    assert.equal(s.value('barmants_wal_receiver_flush_lag_bytes', { server: 'pg' }), 2000);
    assert.equal(s.value('barmants_wal_receiver_heartbeat_age_seconds', { server: 'pg' }), 1);
    assert.equal(s.value('barmants_wal_segments', { server: 'pg' }), 3);
    assert.equal(s.value('barmants_wal_gaps', { server: 'pg' }), 0);
    assert.equal(s.family('barmants_wal_archived_segments_total').type, 'COUNTER');
    assert.equal(s.value('barmants_wal_archived_segments_total', { server: 'pg' }), 0, 'what was archived before the start does not count');
    assert.ok(s.value('process_resident_memory_bytes')! > 0, 'process RSS');

    // New segments (with a hole at 14), retention and a scheduled backup.
    for (const n of [13, 15, 16]) await repo.addSegment(n, { bytes: 1024 });
    metrics.recordRetention('pg', 1, 2);
    metrics.recordScheduledBackup('pg', false);
    repo.catalog.setHeartbeat({ server: 'pg', pid: 1, state: 'retrying', receivedLsn: 5000n, flushedLsn: 5000n, timeline: 1, message: 'connection refused', updatedAt: '2026-11-30T11:59:59Z' });
    s = new Scrape(await metrics.render());
    assert.equal(s.value('barmants_wal_archived_segments_total', { server: 'pg' }), 3);
    assert.equal(s.value('barmants_wal_segments', { server: 'pg' }), 6);
    assert.equal(s.value('barmants_wal_gaps', { server: 'pg' }), 1);
    assert.equal(s.value('barmants_wal_missing_segments', { server: 'pg' }), 1);
    assert.equal(s.value('barmants_retention_deleted_backups_total', { server: 'pg' }), 1);
    assert.equal(s.value('barmants_retention_deleted_wal_segments_total', { server: 'pg' }), 2);
    assert.equal(s.value('barmants_scheduled_backups_total', { server: 'pg', result: 'failed' }), 1);
    assert.equal(s.value('barmants_wal_receiver_state', { server: 'pg', state: 'backoff' }), 1);
    assert.equal(s.value('barmants_wal_receiver_state', { server: 'pg', state: 'streaming' }), 0);

    // A server removed from the configuration leaves the scrape, counters included.
    servers = [];
    s = new Scrape(await metrics.render());
    assert.deepEqual(s.labelValues('barmants_wal_archived_segments_total', 'server'), []);
    assert.deepEqual(s.labelValues('barmants_backups', 'server'), []);
    assert.equal(s.value('barmants_servers'), 0);
  });

  test('the HTTP endpoint: /metrics, /healthz (503 when unhealthy), 404 and 405', async () => {
    const repo = await makeRepo({ streaming_archiver: 'on' });
    repos.push(repo);
    let unhealthy: string | null = null;
    const metrics = new DaemonMetrics({ catalog: repo.catalog, servers: () => [repo.server], unhealthy: () => unhealthy, processMetrics: false });
    const server = await MetricsServer.start('127.0.0.1:0', metrics, nullLogger());
    try {
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const m = await fetch(`${server.url}/metrics`);
      assert.equal(m.status, 200);
      assert.match(m.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      const s = new Scrape(await m.text());
      assert.equal(s.value('barmants_servers'), 1);
      assert.equal(s.value('barmants_wal_receiver_state', { server: 'pg', state: 'stopped' }), 1, 'no heartbeat: stopped');
      let h = await fetch(`${server.url}/healthz`);
      assert.equal(h.status, 200);
      assert.deepEqual(await h.json(), { status: 'ok', receivers: { pg: 'stopped' } });
      unhealthy = 'shutting down';
      h = await fetch(`${server.url}/healthz`);
      assert.equal(h.status, 503);
      assert.equal(((await h.json()) as { reason: string }).reason, 'shutting down');
      assert.equal((await fetch(`${server.url}/nope`)).status, 404);
      assert.equal((await fetch(`${server.url}/metrics`, { method: 'POST' })).status, 405);
    } finally {
      await server.close();
    }
  });
});
