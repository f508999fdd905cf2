/*
 * Applying the retention policy: evaluateRetention (pure) says which backups are obsolete, or
 * FAILED for longer than failed_backup_retention; each is removed through the delete command's
 * own deleteBackup (backup lock, keep and minimum_redundancy re-checked, crash-safe order), with
 * the reason logged. Then the WAL no remaining backup needs goes (wal_retention_policy = main).
 */
import type { BackupRecord, Catalog } from '../catalog/index.js';
import type { ServerConfig } from '../config/index.js';
import { deleteBackup, finishInterruptedDeletes } from '../backup/index.js';
import { isBarmantsError } from '../errors/index.js';
import { failpoint } from '../failpoint/index.js';
import type { Logger } from '../log/index.js';
import { acquireLock, type ServerLayout } from '../repository/index.js';
import { describePolicy, evaluateRetention, type RetentionBackup, type RetentionReport } from '../retention/index.js';
import { removeUnneededWal } from './wal.js';

export interface ApplyRetentionOptions {
  server: ServerConfig;
  layout: ServerLayout;
  catalog: Catalog;
  logger: Logger;
  now: Date;
  /** evaluate and report, delete nothing */
  dryRun?: boolean;
  /** configuration files, for the hooks' BARMAN_CONFIGURATION */
  configFiles?: string[];
}

export interface RetentionOutcome {
  policy: string | null;
  deleted: { backupId: string; reason: string }[];
  /** deletions not done this pass (a backup runs, a refusal): retried next pass */
  deferred: { backupId: string; reason: string }[];
  walRemoved: number;
  warnings: string[];
}

export function toRetentionBackup(b: BackupRecord): RetentionBackup {
  return {
    backupId: b.backupId,
    status: b.status,
    beginTime: b.beginTime,
    endTime: b.endTime,
    keep: b.keep,
    beginWal: b.beginWal,
    endWal: b.endWal,
    timeline: b.timeline,
  };
}

/** Pure part, exposed for `list-backups`-style reports and tests. */
export function retentionReport(server: ServerConfig, backups: BackupRecord[], now: Date): RetentionReport {
  return evaluateRetention({
    policy: server.retentionPolicy,
    minimumRedundancy: server.minimumRedundancy,
    backups: backups.map(toRetentionBackup),
    now,
    failedBackupRetentionSec: server.failedBackupRetentionSec,
  });
}

export async function applyRetention(o: ApplyRetentionOptions): Promise<RetentionOutcome> {
  const { server, layout, catalog } = o;
  const log = o.logger.child({ server: server.name, component: 'retention' });
  // A delete killed half-way left its backup DELETING: finish it first (it would otherwise stay,
  // its WAL removed by the WAL retention below, and `check` would see a gap).
  if (!o.dryRun && catalog.listBackups(server.name, { status: ['DELETING'] }).length) {
    try {
      const lock = await acquireLock(layout.lockFile('backup'), { purpose: 'delete', log: (m) => log.warn(m) });
      try {
        await finishInterruptedDeletes(catalog, layout, log);
      } finally {
        await lock.release();
      }
    } catch (err) {
      if (!isBarmantsError(err, 'lock')) throw err;
      log.info(`an interrupted delete is finished on a later pass: ${err.message}`);
    }
  }
  const report = retentionReport(server, catalog.listBackups(server.name), o.now);
  const out: RetentionOutcome = {
    policy: server.retentionPolicy ? describePolicy(server.retentionPolicy) : null,
    deleted: [],
    deferred: [],
    walRemoved: 0,
    warnings: [...report.warnings],
  };
  for (const w of report.warnings) log.warn(w);
  for (const item of report.toDelete) {
    const rec = catalog.getBackup(server.name, item.backupId);
    // Re-read: it may have changed since the evaluation (a keep, a delete by hand).
    if (!rec || rec.keep || (rec.status !== 'DONE' && rec.status !== 'FAILED')) continue;
    if (o.dryRun) {
      out.deferred.push({ backupId: item.backupId, reason: `dry run: would delete (${item.reason})` });
      continue;
    }
    log.info(`enforcing retention policy: removing backup ${item.backupId} of server '${server.name}': ${item.reason}`);
    failpoint('retention-before-delete-backup');
    try {
      const res = await deleteBackup({ server, layout, catalog, logger: o.logger, ...(o.configFiles ? { configFiles: o.configFiles } : {}) }, rec);
      out.walRemoved += res.walRemoved.length;
      out.deleted.push(item);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      out.deferred.push({ backupId: item.backupId, reason: why });
      if (isBarmantsError(err, 'lock')) {
        log.info(`retention deferred to the next pass: ${why}`);
        break; // a backup or a delete is running: every later deletion would be refused too
      }
      log.warn(`backup ${item.backupId} not deleted by retention: ${why}`);
    }
  }
  if (!o.dryRun) {
    try {
      out.walRemoved += (await removeUnneededWal({ catalog, layout, logger: o.logger, server, ...(o.configFiles ? { configFiles: o.configFiles } : {}) })).removed;
    } catch (err) {
      const why = `WAL retention failed: ${err instanceof Error ? err.message : String(err)}`;
      out.warnings.push(why);
      log.error(why);
    }
  }
  return out;
}
