/*
 * `barmants daemon`: one process for every server. It keeps a supervised WAL receiver per server
 * with streaming_archiver = on, takes the backups backup_schedule asks for (one at a time per
 * server), runs the maintenance pass every maintenance_interval, serves Prometheus metrics on
 * metrics_listen, reopens its log file and reloads its configuration on SIGHUP, and shuts down
 * in stages on SIGTERM/SIGINT (a second signal forces).
 */
import { mkdirSync } from 'node:fs';
import { completeWaitingBackups, runBackup, writeBackupInfo, isoLocal, type BackupDeps, type BackupOptions } from '../backup/index.js';
import { Catalog, type BackupRecord } from '../catalog/index.js';
import { loadConfig, type Config, type ServerConfig } from '../config/index.js';
import { BarmantsError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { runMaintenance, serverLayout, type MaintenanceOptions, type ServerMaintenance } from '../maintenance/index.js';
import { catalogPath, StoreWorkerPool, type ServerLayout } from '../repository/index.js';
import { WalReceiver } from '../wal/index.js';
import { systemClock, type Clock } from './clock.js';
import { DaemonMetrics, MetricsServer } from './metrics.js';
import { fileScheduleStore, ServerSchedule, type DueKind, type ScheduleStore } from './schedule.js';
import { Supervisor, type SupervisorEvent } from './supervisor.js';

export type ReceiverTask = (signal: AbortSignal) => Promise<void>;

export interface DaemonOptions {
  logger: Logger;
  configPath?: string;
  /** the configuration already loaded (the CLI loads it first to set up logging) */
  config?: Config;
  env?: NodeJS.ProcessEnv;
  clock?: Clock;
  /** daemon loop period (scheduler resolution); default 1000 ms */
  tickMs?: number;
  /** receiver restart backoff; defaults 1 s doubling up to 5 min */
  receiverBackoffMs?: { base: number; cap: number };
  /** seams for tests: defaults are the real config loader, WAL receiver, backup and maintenance */
  loadConfig?: () => Config;
  receiverTask?: (server: ServerConfig, layout: ServerLayout, catalog: Catalog, logger: Logger) => ReceiverTask;
  takeBackup?: (deps: BackupDeps, opts: BackupOptions) => Promise<BackupRecord>;
  maintenance?: (o: MaintenanceOptions) => Promise<ServerMaintenance[]>;
  scheduleStore?: ScheduleStore;
  /** how often the maintenance pass also scans for orphans; default 1 h */
  orphanScanIntervalSec?: number;
}

interface RunningBackup {
  kind: DueKind;
  ac: AbortController;
  done: Promise<void>;
}

export class Daemon {
  private config: Config;
  private readonly catalog: Catalog;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly pool = new StoreWorkerPool(2);
  private readonly receivers = new Map<string, Supervisor>();
  private readonly schedules = new Map<string, ServerSchedule>();
  private readonly backups = new Map<string, RunningBackup>();
  private readonly fingerprints = new Map<string, string>();
  private readonly loopAc = new AbortController();
  private readonly forceAc = new AbortController();
  private readonly maintenanceAc = new AbortController();
  private maintenanceRun: Promise<void> | null = null;
  private nextMaintenanceAt = 0;
  private nextOrphanScanAt = 0;
  private reloading: Promise<boolean> = Promise.resolve(true);
  private stopSignals = 0;
  private started = false;
  private metrics: DaemonMetrics | null = null;
  private metricsServer: MetricsServer | null = null;
  private lastTickAt = 0;

  private constructor(private readonly opts: DaemonOptions, config: Config, catalog: Catalog) {
    this.config = config;
    this.catalog = catalog;
    this.log = opts.logger.child({ component: 'daemon' });
    this.clock = opts.clock ?? systemClock;
  }

  /** Loads the configuration (an invalid one throws: nothing starts) and opens the catalog. */
  static open(opts: DaemonOptions): Daemon {
    const config = opts.config ?? (opts.loadConfig ?? (() => loadConfig({ path: opts.configPath, env: opts.env })))();
    mkdirSync(config.global.barmantsHome, { recursive: true, mode: 0o700 });
    const catalog = Catalog.open(catalogPath(config.global.barmantsHome));
    return new Daemon(opts, config, catalog);
  }

  get currentConfig(): Config {
    return this.config;
  }

  /** Per-server view for status and tests. */
  status(): { server: string; receiver: SupervisorEvent | null; nextBackup: string | null; backupRunning: boolean }[] {
    const names = new Set([...this.config.servers.keys(), ...this.receivers.keys()]);
    return [...names].sort().map((server) => ({
      server,
      receiver: this.receivers.get(server)?.state ?? null,
      nextBackup: this.schedules.get(server)?.nextRunAt?.toISOString() ?? null,
      backupRunning: this.backups.has(server),
    }));
  }

  /** The metrics endpoint's URL (with the real port), when metrics_listen is set. */
  get metricsUrl(): string | null {
    return this.metricsServer?.url ?? null;
  }

  /** Runs until stopped; resolves with the exit status (0 graceful, 1 forced). */
  async run(): Promise<number> {
    this.started = true;
    const servers = [...this.config.servers.values()];
    // Metrics first: a port that cannot be bound is a configuration error, found before anything starts.
    if (this.config.global.metricsListen) {
      try {
        this.metricsServer = await MetricsServer.start(this.config.global.metricsListen, this.ensureMetrics(), this.log);
      } catch (err) {
        await this.pool.close().catch(() => undefined);
        this.catalog.close();
        throw new BarmantsError('config', `cannot serve metrics on metrics_listen = ${this.config.global.metricsListen}: ${(err as Error).message}`, {
          hint: 'choose a free port, or remove metrics_listen',
        });
      }
    }
    this.log.info(`barmants daemon started (pid ${process.pid}), ${servers.length} server(s) configured: ${servers.map((s) => s.name).join(', ') || 'none'}`);
    await this.applyServers(new Map(), this.config.servers);
    this.nextMaintenanceAt = this.clock.now().getTime();
    this.nextOrphanScanAt = this.nextMaintenanceAt;
    while (!this.loopAc.signal.aborted) {
      this.lastTickAt = Date.now();
      try {
        await this.tick();
      } catch (err) {
        this.log.error(`daemon loop: ${err instanceof Error ? err.message : String(err)}`);
      }
      await this.clock.sleep(this.opts.tickMs ?? 1000, this.loopAc.signal);
    }
    return this.shutdown();
  }

  /** First call: graceful shutdown. Second call: forced (running backups marked FAILED now). */
  requestStop(reason: string): void {
    this.stopSignals++;
    if (this.stopSignals === 1) {
      this.log.info(`${reason}: shutting down (send it again to force)`);
      this.loopAc.abort();
      this.maintenanceAc.abort();
    } else {
      this.log.warn(`${reason} again: forcing the shutdown`);
      this.forceAc.abort();
    }
    if (!this.started) this.loopAc.abort();
  }

  /** SIGTERM/SIGINT stop, SIGHUP reloads. Returns a function that removes the handlers. */
  installSignalHandlers(): () => void {
    const stop = (sig: NodeJS.Signals) => () => this.requestStop(`received ${sig}`);
    const term = stop('SIGTERM');
    const int = stop('SIGINT');
    const hup = () => {
      // Reopen first: after logrotate renamed the file, this line already starts the new one.
      this.opts.logger.reopen();
      this.log.info('received SIGHUP: log file reopened, reloading the configuration');
      void this.reload();
    };
    process.on('SIGTERM', term);
    process.on('SIGINT', int);
    process.on('SIGHUP', hup);
    return () => {
      process.off('SIGTERM', term);
      process.off('SIGINT', int);
      process.off('SIGHUP', hup);
    };
  }

  /** Re-reads the configuration; an invalid one is logged and the running one stays. */
  reload(): Promise<boolean> {
    this.reloading = this.reloading.then(() => this.doReload());
    return this.reloading;
  }

  private async doReload(): Promise<boolean> {
    if (this.loopAc.signal.aborted) return false;
    let next: Config;
    try {
      next = (this.opts.loadConfig ?? (() => loadConfig({ path: this.opts.configPath, env: this.opts.env })))();
    } catch (err) {
      this.log.error(`configuration reload failed, the previous configuration stays in force: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    }
    if (next.global.barmantsHome !== this.config.global.barmantsHome) {
      this.log.error(
        `configuration reload refused, the previous configuration stays in force: barmants_home changed (${this.config.global.barmantsHome} → ${next.global.barmantsHome}); restart the daemon for that`,
      );
      return false;
    }
    for (const w of next.warnings) this.log.warn(w);
    const previous = this.config;
    const old = this.config.servers;
    this.config = next;
    this.applyLogging(previous, next);
    await this.applyMetrics(previous.global.metricsListen, next.global.metricsListen);
    const summary = await this.applyServers(old, next.servers);
    this.log.info(`configuration reloaded: ${summary}`);
    return true;
  }

  private applyLogging(previous: Config, next: Config): void {
    if (next.global.logLevel !== previous.global.logLevel) {
      this.opts.logger.setLevel(next.global.logLevel);
      this.log.info(`log_level is now ${next.global.logLevel}`);
    }
    if (next.global.logFile !== previous.global.logFile || next.global.logFormat !== previous.global.logFormat) {
      this.log.warn('log_file and log_format changes take effect when the daemon restarts');
    }
  }

  // ------------------------------------------------------------------ metrics

  private ensureMetrics(): DaemonMetrics {
    this.metrics ??= new DaemonMetrics({
      catalog: this.catalog,
      servers: () => [...this.config.servers.values()].filter((s) => s.active),
      now: () => this.clock.now(),
      unhealthy: () => {
        if (this.stopSignals > 0) return 'shutting down';
        const stalled = Date.now() - this.lastTickAt;
        const limit = Math.max(10_000, 5 * (this.opts.tickMs ?? 1000));
        return this.lastTickAt > 0 && stalled > limit ? `the daemon loop has not run for ${Math.round(stalled / 1000)} s` : null;
      },
    });
    return this.metrics;
  }

  /** A changed metrics_listen: the new endpoint first; if it cannot be bound the old one stays. */
  private async applyMetrics(before: string | null, after: string | null): Promise<void> {
    if (before === after) return;
    const old = this.metricsServer;
    if (after === null) {
      this.metricsServer = null;
      await old?.close();
      this.log.info('metrics endpoint closed (metrics_listen removed)');
      return;
    }
    try {
      const fresh = await MetricsServer.start(after, this.ensureMetrics(), this.log);
      this.metricsServer = fresh;
      await old?.close();
    } catch (err) {
      this.log.error(`cannot serve metrics on metrics_listen = ${after}: ${(err as Error).message}; ${old ? `still serving on ${old.url}` : 'no metrics endpoint'}`);
    }
  }

  // ------------------------------------------------------------------ servers

  private fingerprint(s: ServerConfig): string {
    const { source: _s, definedAt: _d, ...rest } = s;
    return JSON.stringify(rest);
  }

  /** Starts, stops and restarts receivers and schedules to go from `old` to `next`. */
  private async applyServers(old: Map<string, ServerConfig>, next: Map<string, ServerConfig>): Promise<string> {
    const added: string[] = [];
    const removed: string[] = [];
    const changed: string[] = [];
    for (const name of old.keys()) if (!next.has(name)) removed.push(name);
    for (const [name, s] of next) {
      const fp = this.fingerprint(s);
      if (!old.has(name)) added.push(name);
      else if (this.fingerprints.get(name) !== fp) changed.push(name);
      this.fingerprints.set(name, fp);
    }
    for (const name of removed) this.fingerprints.delete(name);
    await Promise.all([...removed, ...changed].map((name) => this.stopServer(name, removed.includes(name) ? 'removed from the configuration' : 'configuration changed')));
    for (const name of [...added, ...changed]) await this.startServer(next.get(name)!);
    const parts = [
      added.length ? `${added.length} added (${added.join(', ')})` : '',
      removed.length ? `${removed.length} removed (${removed.join(', ')})` : '',
      changed.length ? `${changed.length} changed (${changed.join(', ')})` : '',
    ].filter(Boolean);
    return parts.length ? parts.join(', ') : 'no server changed';
  }

  private async stopServer(name: string, why: string): Promise<void> {
    this.schedules.delete(name);
    const sup = this.receivers.get(name);
    if (sup) {
      this.receivers.delete(name);
      this.log.child({ server: name }).info(`stopping the WAL receiver: ${why}`);
      await sup.stop(30_000);
    }
    // A running backup of a removed or changed server finishes with the settings it started with.
  }

  private async startServer(s: ServerConfig): Promise<void> {
    const log = this.opts.logger.child({ server: s.name, component: 'daemon' });
    if (!s.active) {
      log.info('server is not active (active = false): no receiver, no schedule');
      return;
    }
    const layout = serverLayout(this.config, s);
    if (this.catalog.getServer(s.name) === null) this.catalog.upsertServer({ name: s.name, systemId: null, pgVersion: null, walSegmentSize: null });
    if (s.streamingArchiver) {
      const task = this.opts.receiverTask?.(s, layout, this.catalog, this.opts.logger) ?? this.realReceiver(s, layout);
      const backoff = this.opts.receiverBackoffMs ?? { base: 1000, cap: 300_000 };
      const sup = new Supervisor({
        name: `WAL receiver of server '${s.name}'`,
        task,
        clock: this.clock,
        logger: log,
        baseMs: backoff.base,
        capMs: backoff.cap,
        onEvent: (e) => this.recordReceiverEvent(s.name, e),
      });
      this.receivers.set(s.name, sup);
      log.info('starting the WAL receiver');
      sup.start();
    }
    if (s.backupSchedule) {
      try {
        const sched = new ServerSchedule(s.name, s.backupSchedule, s.backupScheduleCatchup, this.opts.scheduleStore ?? fileScheduleStore(this.config.global.barmantsHome), this.clock, log);
        await sched.init();
        this.schedules.set(s.name, sched);
      } catch (err) {
        log.error(`backup schedule not started: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  private realReceiver(s: ServerConfig, layout: ServerLayout): ReceiverTask {
    const log = this.opts.logger.child({ server: s.name, component: 'daemon' });
    return (signal) =>
      new WalReceiver({
        server: s,
        layout,
        catalog: this.catalog,
        logger: this.opts.logger,
        // A backup waiting for its WAL is DONE as soon as the last segment it needs lands.
        onSegmentArchived: async () => {
          await completeWaitingBackups(this.catalog, layout, log).catch((err) => log.warn(`cannot complete waiting backups: ${(err as Error).message}`));
        },
      }).run(signal);
  }

  /** The supervisor's view goes to the catalog heartbeat (status, check) on top of the receiver's own. */
  private recordReceiverEvent(server: string, e: SupervisorEvent): void {
    if (e.state !== 'backoff') return;
    const hb = this.catalog.getHeartbeat(server);
    const retry = e.retryInMs !== undefined ? `; restart ${e.attempt} in ${(e.retryInMs / 1000).toFixed(1)} s` : '';
    this.catalog.setHeartbeat({
      server,
      pid: process.pid,
      state: 'backoff',
      receivedLsn: hb?.receivedLsn ?? null,
      flushedLsn: hb?.flushedLsn ?? null,
      timeline: hb?.timeline ?? null,
      message: `${e.error ?? 'receiver ended'}${retry}`,
      updatedAt: isoLocal(this.clock.now()),
    });
  }

  // ------------------------------------------------------------------ the loop

  private async tick(): Promise<void> {
    for (const [name, sched] of this.schedules) {
      const kind = await sched.due(this.backups.has(name));
      if (kind) this.startBackup(name, kind);
    }
    const now = this.clock.now().getTime();
    if (now >= this.nextMaintenanceAt && this.maintenanceRun === null) {
      this.nextMaintenanceAt = now + this.config.global.maintenanceIntervalSec * 1000;
      const orphans = now >= this.nextOrphanScanAt;
      if (orphans) this.nextOrphanScanAt = now + (this.opts.orphanScanIntervalSec ?? 3600) * 1000;
      this.maintenanceRun = this.maintain(orphans).finally(() => (this.maintenanceRun = null));
    }
  }

  private async maintain(orphans: boolean): Promise<void> {
    const run = this.opts.maintenance ?? runMaintenance;
    try {
      const reports = await run({
        config: this.config,
        catalog: this.catalog,
        logger: this.opts.logger,
        now: () => this.clock.now(),
        signal: this.maintenanceAc.signal,
        orphans,
        pool: this.pool,
      });
      for (const r of reports) {
        const deleted = r.retention?.deleted.length ?? 0;
        const compressed = r.compression?.compressed.length ?? 0;
        this.metrics?.recordRetention(r.server, deleted, r.retention?.walRemoved ?? 0);
        if (deleted || compressed || r.completed.length || r.errors.length) {
          this.opts.logger.child({ server: r.server, component: 'maintenance' }).info(
            `maintenance: ${r.completed.length} backup(s) completed, ${compressed} WAL segment(s) compressed, ${deleted} backup(s) and ${r.retention?.walRemoved ?? 0} WAL segment(s) removed by retention${r.errors.length ? `, ${r.errors.length} error(s)` : ''}`,
          );
        }
      }
    } catch (err) {
      this.log.error(`maintenance pass failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private startBackup(name: string, kind: DueKind): void {
    const s = this.config.servers.get(name);
    if (!s) return;
    const log = this.opts.logger.child({ server: name, component: 'scheduler' });
    const ac = new AbortController();
    const take = this.opts.takeBackup ?? runBackup;
    log.info(`starting ${kind === 'catch-up' ? 'a catch-up' : 'a scheduled'} backup`);
    const done = (async () => {
      try {
        const rec = await take(
          { server: s, layout: serverLayout(this.config, s), catalog: this.catalog, logger: this.opts.logger, configFiles: this.config.files },
          { signal: ac.signal },
        );
        log.info(`${kind} backup ${rec.backupId} finished: ${rec.status}`);
        this.metrics?.recordScheduledBackup(name, rec.status !== 'FAILED');
      } catch (err) {
        log.error(`${kind} backup failed: ${err instanceof Error ? err.message : String(err)}`);
        this.metrics?.recordScheduledBackup(name, false);
      } finally {
        this.backups.delete(name);
      }
    })();
    this.backups.set(name, { kind, ac, done });
  }

  // ------------------------------------------------------------------ shutdown

  /** Resolves after `ms` (clock time) or at a forced stop; true if the promise settled first. */
  private async within(p: Promise<unknown>, ms: number): Promise<boolean> {
    const timer = new AbortController();
    const onForce = () => timer.abort();
    this.forceAc.signal.addEventListener('abort', onForce);
    try {
      return await Promise.race([p.then(() => true), this.clock.sleep(ms, timer.signal).then(() => false)]);
    } finally {
      timer.abort();
      this.forceAc.signal.removeEventListener('abort', onForce);
    }
  }

  private async shutdown(): Promise<number> {
    const graceSec = Math.max(0, ...[...this.config.servers.values()].map((s) => s.shutdownGracePeriodSec));
    const graceMs = graceSec * 1000;
    this.schedules.clear();
    // Receivers: fsync what they hold, send the final feedback, release their locks.
    const receivers = Promise.all([...this.receivers.values()].map((sup) => sup.stop(Math.max(graceMs, 5000))));
    if (this.backups.size) {
      this.log.info(`waiting up to ${graceSec} s (shutdown_grace_period) for ${this.backups.size} running backup(s): ${[...this.backups.keys()].join(', ')}`);
      const all = Promise.all([...this.backups.values()].map((b) => b.done));
      if (!(await this.within(all, graceMs)) && this.backups.size) {
        this.log.warn(`shutdown_grace_period elapsed: stopping ${this.backups.size} backup(s)`);
        for (const b of this.backups.values()) b.ac.abort();
        await this.within(all, 10_000);
        for (const name of this.backups.keys()) this.markInterrupted(name, graceSec);
      }
    }
    if (!(await this.within(receivers, Math.max(graceMs, 5000)))) this.log.warn('some WAL receivers did not stop in time');
    if (this.maintenanceRun) await this.within(this.maintenanceRun, 10_000);
    await this.pool.close().catch(() => undefined);
    const forced = this.forceAc.signal.aborted;
    if (forced) for (const name of this.backups.keys()) this.markInterrupted(name, graceSec);
    await this.metricsServer?.close().catch(() => undefined);
    this.metricsServer = null;
    this.catalog.close();
    this.log.info(forced ? 'daemon stopped (forced)' : 'daemon stopped');
    return forced ? 1 : 0;
  }

  /** A backup that did not stop by itself: FAILED in the catalog and backup.info, as a crash would leave it after repair. */
  private markInterrupted(server: string, graceSec: number): void {
    const s = this.config.servers.get(server);
    for (const b of this.catalog.listBackups(server, { status: ['STARTED'] })) {
      if (b.pid !== process.pid) continue;
      const rec = this.catalog.updateBackup(server, b.backupId, {
        status: 'FAILED',
        error: `stopped by the daemon shutdown (shutdown_grace_period ${graceSec} s elapsed)`,
        pid: null,
        endTime: isoLocal(this.clock.now()),
      });
      if (s) void writeBackupInfo(serverLayout(this.config, s), rec).catch(() => undefined);
      this.log.child({ server }).warn(`backup ${b.backupId} marked FAILED: the daemon stopped before it completed`);
    }
  }
}
