/*
 * One maintenance pass (`barmants cron`, and the daemon every maintenance_interval): per server,
 * under its cron lock so two passes never overlap, complete WAITING_FOR_WALS backups, compress
 * WAL stored uncompressed, apply retention (backups, then WAL), and optionally report orphans.
 * A failing step is logged and reported; it never stops the other steps or servers.
 */
import type { Catalog } from '../catalog/index.js';
import type { Config, ServerConfig } from '../config/index.js';
import { completeWaitingBackups } from '../backup/index.js';
import { isBarmantsError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { acquireLock, ServerLayout, StoreWorkerPool } from '../repository/index.js';
import { compressWal, type CompressWalResult } from './compress.js';
import { findOrphans, type Orphan } from './orphans.js';
import { applyRetention, type RetentionOutcome } from './retention.js';

export interface MaintenanceOptions {
  config: Config;
  catalog: Catalog;
  logger: Logger;
  now?: () => Date;
  /** restrict to these servers (default: every active server) */
  servers?: string[];
  signal?: AbortSignal;
  /** scan for orphans too (cheap for base/, one query per WAL directory) */
  orphans?: boolean;
  /** a pool to reuse (the daemon's); otherwise one is created for the pass */
  pool?: StoreWorkerPool;
}

export interface ServerMaintenance {
  server: string;
  /** why the server was skipped (lock held, inactive), else null */
  skipped: string | null;
  completed: string[];
  compression: Pick<CompressWalResult, 'codec' | 'compressed' | 'bytesBefore' | 'bytesAfter' | 'failed'> | null;
  retention: RetentionOutcome | null;
  orphans: Orphan[] | null;
  errors: string[];
}

export function serverLayout(config: Config, server: ServerConfig): ServerLayout {
  return new ServerLayout(config.global.barmantsHome, server.name, server.backupDirectory);
}

async function step<T>(name: string, errors: string[], log: Logger, fn: () => Promise<T>): Promise<T | null> {
  try {
    return await fn();
  } catch (err) {
    const msg = `${name} failed: ${err instanceof Error ? err.message : String(err)}`;
    errors.push(msg);
    log.error(msg);
    return null;
  }
}

export async function maintainServer(server: ServerConfig, o: MaintenanceOptions & { pool: StoreWorkerPool }): Promise<ServerMaintenance> {
  const out: ServerMaintenance = { server: server.name, skipped: null, completed: [], compression: null, retention: null, orphans: null, errors: [] };
  const log = o.logger.child({ server: server.name, component: 'maintenance' });
  const layout = serverLayout(o.config, server);
  const now = o.now ?? (() => new Date());
  let lock;
  try {
    await layout.ensure();
    lock = await acquireLock(layout.lockFile('cron'), { purpose: 'cron' });
  } catch (err) {
    if (isBarmantsError(err, 'lock')) {
      out.skipped = `another maintenance pass is running: ${err.message}`;
      log.info(out.skipped);
      return out;
    }
    throw err;
  }
  try {
    const { catalog } = o;
    if (catalog.getServer(server.name) === null) catalog.upsertServer({ name: server.name, systemId: null, pgVersion: null, walSegmentSize: null });
    out.completed = ((await step('completing WAITING_FOR_WALS backups', out.errors, log, () => completeWaitingBackups(catalog, layout, log))) ?? []).map(
      (b) => b.backupId,
    );
    if (o.signal?.aborted) return out;
    out.compression = await step('WAL compression', out.errors, log, () =>
      compressWal({ server, layout, catalog, logger: o.logger, pool: o.pool, ...(o.signal ? { signal: o.signal } : {}) }),
    );
    if (o.signal?.aborted) return out;
    out.retention = await step('retention', out.errors, log, () => applyRetention({ server, layout, catalog, logger: o.logger, now: now(), configFiles: o.config.files }));
    if (o.orphans && !o.signal?.aborted) {
      out.orphans = await step('orphan scan', out.errors, log, () => findOrphans({ layout, catalog, logger: o.logger, now: now() }));
    }
    return out;
  } finally {
    await lock.release();
  }
}

/** One pass over the servers, one after the other (each step is I/O- or worker-bound). */
export async function runMaintenance(o: MaintenanceOptions): Promise<ServerMaintenance[]> {
  const servers = [...o.config.servers.values()].filter((s) => (o.servers ? o.servers.includes(s.name) : s.active));
  const pool = o.pool ?? new StoreWorkerPool(2);
  const reports: ServerMaintenance[] = [];
  try {
    for (const s of servers) {
      if (o.signal?.aborted) break;
      if (!s.active) {
        reports.push({ server: s.name, skipped: 'inactive (active = false)', completed: [], compression: null, retention: null, orphans: null, errors: [] });
        continue;
      }
      try {
        reports.push(await maintainServer(s, { ...o, pool }));
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        o.logger.child({ server: s.name, component: 'maintenance' }).error(`maintenance failed: ${msg}`);
        reports.push({ server: s.name, skipped: null, completed: [], compression: null, retention: null, orphans: null, errors: [msg] });
      }
    }
  } finally {
    if (!o.pool) await pool.close();
  }
  return reports;
}
