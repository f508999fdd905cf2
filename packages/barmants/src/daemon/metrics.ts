/*
 * The daemon's Prometheus endpoint (metrics_listen): GET /metrics in the text exposition format
 * (prom-client) and GET /healthz. Per-server gauges are computed at scrape time from the catalog,
 * with indexed queries only, so they say what `status` and `check` say and nothing hooks into
 * the receivers; the two whole-archive figures (segment count, gaps) are recomputed at most once
 * a minute per server. Counters count what this process saw or did since it started: segments
 * archived (from the newest position in the catalog), backups and WAL removed by retention,
 * scheduled backups by outcome. Process metrics (RSS, CPU, event-loop lag) come from prom-client.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { parseWalFileName, segmentOf } from 'pg-replication';
import { BACKUP_STATUSES, type Catalog } from '../catalog/index.js';
import type { ServerConfig } from '../config/index.js';
import type { Logger } from '../log/index.js';
import { parseCatalogTime } from '../retention/index.js';

/** Receiver states as exported: the heartbeat's own words folded into four. */
export const RECEIVER_STATES = ['starting', 'streaming', 'backoff', 'stopped'] as const;
export type ReceiverMetricState = (typeof RECEIVER_STATES)[number];

/** A heartbeat older than this means no receiver is alive to write it (as `check` judges). */
const HEARTBEAT_STALE_MS = 30_000;

export function receiverMetricState(state: string | null, updatedAt: string | null, now: Date): ReceiverMetricState {
  if (state === null) return 'stopped';
  const at = updatedAt === null ? null : Date.parse(updatedAt);
  if (at === null || Number.isNaN(at) || now.getTime() - at > HEARTBEAT_STALE_MS) return 'stopped';
  switch (state) {
    case 'streaming':
      return 'streaming';
    case 'starting':
      return 'starting';
    case 'retrying':
    case 'backoff':
      return 'backoff';
    default:
      return 'stopped';
  }
}

export interface MetricsContext {
  catalog: Catalog;
  /** the servers to report on: the configured, active ones (read at every scrape) */
  servers: () => ServerConfig[];
  now?: () => Date;
  /** null when the daemon is healthy, else why not (for /healthz) */
  unhealthy?: () => string | null;
  /** how long the whole-archive figures (count, gaps) are reused; default 60 s */
  slowRefreshMs?: number;
  /** prom-client's process metrics (RSS, CPU, event loop); default on */
  processMetrics?: boolean;
}

interface SlowFacts {
  at: number;
  count: number;
  gaps: number;
  missing: number;
  /** counter readings when `count` was taken, to carry it forward between refreshes */
  archivedThen: number;
  removedThen: number;
}

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly now: () => Date;
  private readonly positions = new Map<string, { timeline: number; segno: bigint } | null>();
  private readonly slow = new Map<string, SlowFacts>();
  /** the counters' values, readable synchronously: `archived:<server>`, `removed:<server>` */
  private readonly tally = new Map<string, number>();

  private readonly lastBackupAge: Gauge;
  private readonly lastBackupSize: Gauge;
  private readonly backups: Gauge;
  private readonly failedBackups: Gauge;
  private readonly receiverState: Gauge;
  private readonly flushLag: Gauge;
  private readonly heartbeatAge: Gauge;
  private readonly walSegments: Gauge;
  private readonly lastArchived: Gauge;
  private readonly walGaps: Gauge;
  private readonly walMissing: Gauge;
  private readonly archived: Counter;
  private readonly retentionBackups: Counter;
  private readonly retentionWal: Counter;
  private readonly scheduled: Counter;
  private readonly serversGauge: Gauge;

  constructor(private readonly ctx: MetricsContext) {
    this.now = ctx.now ?? (() => new Date());
    const r = [this.registry];
    const server = ['server'];
    this.serversGauge = new Gauge({ name: 'barmants_servers', help: 'Active servers in the configuration.', registers: r });
    this.lastBackupAge = new Gauge({ name: 'barmants_last_backup_age_seconds', help: 'Age of the newest DONE backup (from its end time).', labelNames: server, registers: r });
    this.lastBackupSize = new Gauge({ name: 'barmants_last_backup_size_bytes', help: 'Stored size of the newest DONE backup.', labelNames: server, registers: r });
    this.backups = new Gauge({ name: 'barmants_backups', help: 'Backups in the catalog by status.', labelNames: ['server', 'status'], registers: r });
    this.failedBackups = new Gauge({ name: 'barmants_failed_backups', help: 'FAILED backups in the catalog (kept for failed_backup_retention).', labelNames: server, registers: r });
    this.receiverState = new Gauge({
      name: 'barmants_wal_receiver_state',
      help: `WAL receiver state from its heartbeat: 1 for the current one of ${RECEIVER_STATES.join(', ')} (stopped also when the heartbeat is older than 30 s).`,
      labelNames: ['server', 'state'],
      registers: r,
    });
    this.flushLag = new Gauge({ name: 'barmants_wal_receiver_flush_lag_bytes', help: 'WAL received but not yet fsynced (received - flushed position of the heartbeat).', labelNames: server, registers: r });
    this.heartbeatAge = new Gauge({ name: 'barmants_wal_receiver_heartbeat_age_seconds', help: 'Time since the WAL receiver last wrote its heartbeat.', labelNames: server, registers: r });
    this.walSegments = new Gauge({ name: 'barmants_wal_segments', help: 'WAL segments in the archive (recounted at most once a minute, carried forward in between).', labelNames: server, registers: r });
    this.lastArchived = new Gauge({ name: 'barmants_wal_last_archived_timestamp_seconds', help: 'When the newest archived segment was recorded (Unix time).', labelNames: server, registers: r });
    this.walGaps = new Gauge({ name: 'barmants_wal_gaps', help: "Holes in the archive since the oldest backup's begin WAL (as check's WAL continuity).", labelNames: server, registers: r });
    this.walMissing = new Gauge({ name: 'barmants_wal_missing_segments', help: 'Segments missing in those holes.', labelNames: server, registers: r });
    this.archived = new Counter({ name: 'barmants_wal_archived_segments_total', help: 'Segments that reached the archive since the daemon started (rate() gives the archive rate).', labelNames: server, registers: r });
    this.retentionBackups = new Counter({ name: 'barmants_retention_deleted_backups_total', help: 'Backups deleted by retention in the maintenance loop.', labelNames: server, registers: r });
    this.retentionWal = new Counter({ name: 'barmants_retention_deleted_wal_segments_total', help: 'WAL segments removed by retention in the maintenance loop.', labelNames: server, registers: r });
    this.scheduled = new Counter({ name: 'barmants_scheduled_backups_total', help: 'Backups the scheduler ran, by outcome (failed: ended FAILED or with an error).', labelNames: ['server', 'result'], registers: r });
    if (ctx.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    // Counting starts now: what the archive held before is not "archived since the start".
    for (const s of ctx.servers()) this.observePosition(s.name);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  recordRetention(server: string, backups: number, walSegments: number): void {
    this.retentionBackups.inc({ server }, backups);
    this.retentionWal.inc({ server }, walSegments);
    this.bump(`removed:${server}`, walSegments);
  }

  private bump(key: string, n: number): void {
    this.tally.set(key, (this.tally.get(key) ?? 0) + n);
  }

  recordScheduledBackup(server: string, ok: boolean): void {
    this.scheduled.inc({ server, result: ok ? 'done' : 'failed' });
  }

  /** Refreshes every gauge from the catalog, then renders the registry. */
  async render(): Promise<string> {
    this.refresh();
    return this.registry.metrics();
  }

  /** Counts segments recorded after the last position seen; returns how many are new. */
  private observePosition(server: string): number {
    const { catalog } = this.ctx;
    const prev = this.positions.get(server);
    const last = catalog.lastWalSegment(server);
    const pos = last ? { timeline: last.timeline, segno: last.segno } : null;
    this.positions.set(server, pos);
    if (prev === undefined || pos === null) return 0;
    if (prev === null) return catalog.countWalSegments(server);
    if (pos.timeline < prev.timeline || (pos.timeline === prev.timeline && pos.segno < prev.segno)) return 0; // rebuilt or cleared
    return catalog.countWalSegmentsAfter(server, prev.timeline, prev.segno);
  }

  private refresh(): void {
    const { catalog } = this.ctx;
    const now = this.now();
    const servers = this.ctx.servers();
    const names = new Set(servers.map((s) => s.name));
    for (const g of [this.lastBackupAge, this.lastBackupSize, this.backups, this.failedBackups, this.receiverState, this.flushLag, this.heartbeatAge,
      this.walSegments, this.lastArchived, this.walGaps, this.walMissing]) g.reset();
    // Counters keep their values, except for servers no longer configured.
    for (const name of [...this.positions.keys()]) {
      if (names.has(name)) continue;
      this.positions.delete(name);
      this.slow.delete(name);
      this.tally.delete(`archived:${name}`);
      this.tally.delete(`removed:${name}`);
      for (const c of [this.archived, this.retentionBackups, this.retentionWal]) c.remove({ server: name });
      for (const result of ['done', 'failed']) this.scheduled.remove({ server: name, result });
    }
    this.serversGauge.set(servers.length);
    for (const s of servers) {
      const server = s.name;
      if (catalog.getServer(server) === null) continue;
      const all = catalog.listBackups(server);
      const byStatus = new Map<string, number>(BACKUP_STATUSES.map((st) => [st, 0]));
      for (const b of all) byStatus.set(b.status, (byStatus.get(b.status) ?? 0) + 1);
      for (const [status, n] of byStatus) this.backups.set({ server, status }, n);
      this.failedBackups.set({ server }, byStatus.get('FAILED') ?? 0);
      const last = [...all].reverse().find((b) => b.status === 'DONE');
      if (last) {
        const end = parseCatalogTime(last.endTime ?? last.beginTime);
        if (end !== null) this.lastBackupAge.set({ server }, Math.max(0, (now.getTime() - end) / 1000));
        this.lastBackupSize.set({ server }, last.size);
      }

      if (s.streamingArchiver) {
        const hb = catalog.getHeartbeat(server);
        const state = receiverMetricState(hb?.state ?? null, hb?.updatedAt ?? null, now);
        for (const st of RECEIVER_STATES) this.receiverState.set({ server, state: st }, st === state ? 1 : 0);
        if (hb) {
          const at = Date.parse(hb.updatedAt);
          if (!Number.isNaN(at)) this.heartbeatAge.set({ server }, Math.max(0, (now.getTime() - at) / 1000));
          if (hb.receivedLsn !== null && hb.flushedLsn !== null) {
            const lag = hb.receivedLsn > hb.flushedLsn ? hb.receivedLsn - hb.flushedLsn : 0n;
            this.flushLag.set({ server }, Number(lag));
          }
        }
      }

      const fresh = this.observePosition(server);
      if (fresh > 0) {
        this.archived.inc({ server }, fresh);
        this.bump(`archived:${server}`, fresh);
      }
      // Touch the counters so a server shows 0 before its first event.
      this.archived.inc({ server }, 0);
      this.retentionBackups.inc({ server }, 0);
      this.retentionWal.inc({ server }, 0);
      const newest = catalog.lastWalSegment(server);
      if (newest) {
        const at = Date.parse(newest.archivedAt);
        if (!Number.isNaN(at)) this.lastArchived.set({ server }, at / 1000);
      }
      const facts = this.slowFacts(server, now);
      this.walSegments.set({ server }, facts.count);
      this.walGaps.set({ server }, facts.gaps);
      this.walMissing.set({ server }, facts.missing);
    }
  }

  /** Count and gaps: whole-archive queries, so taken at most every slowRefreshMs. */
  private slowFacts(server: string, now: Date): { count: number; gaps: number; missing: number } {
    const archived = this.tally.get(`archived:${server}`) ?? 0;
    const removed = this.tally.get(`removed:${server}`) ?? 0;
    const cached = this.slow.get(server);
    const ttl = this.ctx.slowRefreshMs ?? 60_000;
    if (cached && now.getTime() - cached.at < ttl) {
      return { count: Math.max(0, cached.count + (archived - cached.archivedThen) - (removed - cached.removedThen)), gaps: cached.gaps, missing: cached.missing };
    }
    const { catalog } = this.ctx;
    const holes = walHoles(catalog, server);
    const facts: SlowFacts = { at: now.getTime(), count: catalog.countWalSegments(server), gaps: holes.length, missing: holes.reduce((n, h) => n + h, 0), archivedThen: archived, removedThen: removed };
    this.slow.set(server, facts);
    return facts;
  }

  /** Everything /healthz says. */
  health(): { ok: boolean; body: Record<string, unknown> } {
    const why = this.ctx.unhealthy?.() ?? null;
    const now = this.now();
    const receivers: Record<string, ReceiverMetricState> = {};
    try {
      for (const s of this.ctx.servers()) {
        if (!s.streamingArchiver) continue;
        const hb = this.ctx.catalog.getHeartbeat(s.name);
        receivers[s.name] = receiverMetricState(hb?.state ?? null, hb?.updatedAt ?? null, now);
      }
    } catch (err) {
      return { ok: false, body: { status: 'unhealthy', reason: `catalog: ${(err as Error).message}` } };
    }
    return why === null ? { ok: true, body: { status: 'ok', receivers } } : { ok: false, body: { status: 'unhealthy', reason: why, receivers } };
  }
}

/**
 * Sizes of the holes in the archive, per timeline, from the oldest backup that still counts (not
 * FAILED) onwards, or from the first archived segment: the same range `check` verifies for WAL
 * continuity (checks/gather.ts), with the catalog's island queries.
 */
export function walHoles(catalog: Catalog, server: string): number[] {
  const size = catalog.getServer(server)?.walSegmentSize ?? null;
  const first = catalog.firstWalSegment(server);
  if (!size || !first) return [];
  const oldest = catalog.listBackups(server).find((b) => b.status !== 'FAILED' && b.beginWal !== null && b.timeline !== null);
  let startTli = first.timeline;
  let startSegno = first.segno;
  if (oldest) {
    const p = parseWalFileName(oldest.beginWal!, size);
    startTli = p.tli;
    startSegno = p.segno;
  }
  const history = new Map(catalog.listHistoryFiles(server).map((h) => [h.tli, h]));
  const out: number[] = [];
  for (const tli of catalog.listTimelines(server)) {
    if (tli < startTli) continue;
    const seg = catalog.listWalSegments(server, { timeline: tli, limit: 1 })[0];
    if (!seg) continue;
    const h = history.get(tli);
    const from = tli === startTli ? startSegno : h ? segmentOf(h.switchLsn, size) : seg.segno;
    const lastOnTli = catalog.walRanges(server, tli, from).ranges.at(-1)?.to;
    if (lastOnTli === undefined) continue;
    for (const g of catalog.missingSegments(server, tli, from, lastOnTli)) out.push(Number(g.to - g.from + 1n));
  }
  return out;
}

/** `address:port` or `[v6]:port` (as parseListen normalises it) → host and port. */
export function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(i + 1)) };
}

export function isLoopback(host: string): boolean {
  return host === '::1' || /^127\./.test(host);
}

/** The HTTP side: /metrics and /healthz, nothing else, GET and HEAD only. */
export class MetricsServer {
  private constructor(
    private readonly server: Server,
    /** what it listens on, with the real port (port 0 in the option picks a free one) */
    readonly url: string,
    readonly listen: string,
  ) {}

  static async start(listen: string, metrics: DaemonMetrics, log: Logger): Promise<MetricsServer> {
    const { host, port } = splitListen(listen);
    const server = createServer((req, res) => void MetricsServer.handle(req, res, metrics, log));
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => log.error(`metrics endpoint: ${err.message}`));
    const addr = server.address();
    const realPort = typeof addr === 'object' && addr !== null ? addr.port : port;
    const shown = host.includes(':') ? `[${host}]` : host;
    const m = new MetricsServer(server, `http://${shown}:${realPort}`, listen);
    if (!isLoopback(host)) {
      log.warn(`metrics_listen = ${listen} is not a loopback address: /metrics and /healthz are served, without authentication, to anyone who can reach it`);
    }
    log.info(`serving Prometheus metrics on ${m.url}/metrics (health: ${m.url}/healthz)`);
    return m;
  }

  private static async handle(req: IncomingMessage, res: ServerResponse, metrics: DaemonMetrics, log: Logger): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    try {
      if (path === '/metrics') {
        const body = await metrics.render();
        res.writeHead(200, { 'content-type': metrics.contentType }).end(req.method === 'HEAD' ? undefined : body);
      } else if (path === '/healthz') {
        const h = metrics.health();
        res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' }).end(req.method === 'HEAD' ? undefined : JSON.stringify(h.body) + '\n');
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
      }
    } catch (err) {
      log.error(`metrics endpoint: ${(err as Error).message}`);
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`error: ${(err as Error).message}\n`);
    }
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
