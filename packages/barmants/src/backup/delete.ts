/*
 * delete: removes a backup, refusing kept backups and deletions that would leave fewer DONE
 * backups than minimum_redundancy. Crash-safe order: DELETING in the catalog and backup.info,
 * then the directory, then the catalog row; an interrupted delete is finished by the next one.
 * WAL that no remaining backup needs (before the oldest remaining begin_wal) goes too, as Barman.
 */
import { rm } from 'node:fs/promises';
import { fsyncDir, acquireLock, type ServerLayout } from '../repository/index.js';
import type { BackupRecord, Catalog } from '../catalog/index.js';
import type { ServerConfig } from '../config/index.js';
import { BarmantsError } from '../errors/index.js';
import { failpoint } from '../failpoint/index.js';
import { runHooks } from '../hooks/index.js';
import type { Logger } from '../log/index.js';
import { removeUnneededWal } from '../maintenance/wal.js';
import { writeBackupInfo } from './info.js';

export interface DeleteResult {
  backupId: string;
  /** backups whose interrupted delete was finished on the way */
  finished: string[];
  walRemoved: string[];
  seconds: number;
}

export interface DeleteDeps {
  server: ServerConfig;
  layout: ServerLayout;
  catalog: Catalog;
  logger: Logger;
  /** configuration files, for the hooks' BARMAN_CONFIGURATION */
  configFiles?: string[];
}

async function removeBackupFiles(layout: ServerLayout, catalog: Catalog, backupId: string): Promise<void> {
  await rm(layout.backupDir(backupId), { recursive: true, force: true });
  await fsyncDir(layout.baseDir).catch(() => undefined);
  catalog.deleteBackup(layout.server, backupId);
}

/** Finishes deletes a crash interrupted (catalog rows left DELETING). Call with the backup lock. */
export async function finishInterruptedDeletes(catalog: Catalog, layout: ServerLayout, log: Logger): Promise<string[]> {
  const done: string[] = [];
  for (const b of catalog.listBackups(layout.server, { status: ['DELETING'] })) {
    await removeBackupFiles(layout, catalog, b.backupId);
    log.warn(`finished the interrupted delete of backup ${b.backupId}`);
    done.push(b.backupId);
  }
  return done;
}

/** Refuses the delete when it is not allowed; returns nothing when it is. */
export function checkDeletable(server: ServerConfig, catalog: Catalog, rec: BackupRecord): void {
  if (rec.keep) {
    throw new BarmantsError('unsafe', `backup ${rec.backupId} of server '${rec.server}' has a keep annotation (${rec.keep}): not deleted`, {
      hint: `release it first with \`barmants keep ${rec.server} ${rec.backupId} --release\``,
    });
  }
  if (rec.status === 'STARTED' && rec.pid !== null && rec.pid !== process.pid) {
    // A live backup holds the lock, so we only get here for a dead one: it is fine to delete.
  }
  if (rec.status === 'DONE') {
    const done = catalog.listBackups(rec.server, { status: ['DONE'] }).length;
    if (done - 1 < server.minimumRedundancy) {
      throw new BarmantsError(
        'unsafe',
        `skipping delete of backup ${rec.backupId} for server '${rec.server}' due to minimum redundancy requirements (minimum redundancy = ${server.minimumRedundancy}, current redundancy = ${done})`,
        { hint: 'take another backup first, or lower minimum_redundancy' },
      );
    }
  }
}

export async function deleteBackup(deps: DeleteDeps, rec: BackupRecord): Promise<DeleteResult> {
  const { server, layout, catalog } = deps;
  const log = deps.logger.child({ server: server.name, component: 'delete', backup: rec.backupId });
  const t0 = Date.now();
  // The same lock as backup (as Barman): a delete never races a backup or another delete.
  const lock = await acquireLock(layout.lockFile('backup'), { purpose: 'delete', log: (m) => log.warn(m) });
  try {
    const finished = await finishInterruptedDeletes(catalog, layout, log);
    const current = catalog.getBackup(server.name, rec.backupId);
    if (!current) return { backupId: rec.backupId, finished, walRemoved: [], seconds: (Date.now() - t0) / 1000 };
    checkDeletable(server, catalog, current);
    const all = catalog.listBackups(server.name);
    const idx = all.findIndex((b) => b.backupId === current.backupId);
    const vars = {
      SERVER: server.name,
      BACKUP_ID: current.backupId,
      BACKUP_DIR: layout.backupDir(current.backupId),
      BACKUP_INFO_PATH: layout.backupInfoFile(current.backupId),
      PREVIOUS_ID: all[idx - 1]?.backupId ?? '',
      NEXT_ID: all[idx + 1]?.backupId ?? '',
      STATUS: current.status,
      ERROR: '',
    };
    await runHooks({ operation: 'delete', phase: 'pre', hooks: server.hooks, vars, logger: log });
    log.info(`deleting backup ${current.backupId} of server '${server.name}'`);
    const marked = catalog.updateBackup(server.name, current.backupId, { status: 'DELETING' });
    await writeBackupInfo(layout, marked).catch(() => undefined);
    failpoint('delete-after-mark');
    await removeBackupFiles(layout, catalog, current.backupId);
    // Paged over the catalog, with the wal_delete hooks (maintenance/wal.ts imports nothing of backup/).
    const walRemoved = (await removeUnneededWal({ catalog, layout, logger: deps.logger, server, ...(deps.configFiles ? { configFiles: deps.configFiles } : {}), names: true })).names;
    await runHooks({ operation: 'delete', phase: 'post', hooks: server.hooks, vars, logger: log });
    const seconds = (Date.now() - t0) / 1000;
    log.info(`deleted backup ${current.backupId}${walRemoved.length ? `, and ${walRemoved.length} WAL segment(s) no backup needs` : ''}`);
    return { backupId: current.backupId, finished, walRemoved, seconds };
  } finally {
    await lock.release();
  }
}
