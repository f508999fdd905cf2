/*
 * keep: a keep annotation (full or standalone) exempts a DONE backup from retention and from
 * delete. It lives in the catalog row and in backup.info, so rebuild-catalog restores it.
 */
import type { BackupRecord, Catalog, KeepTarget } from '../catalog/index.js';
import { BarmantsError } from '../errors/index.js';
import type { ServerLayout } from '../repository/index.js';
import { writeBackupInfo } from './info.js';

/** Sets (target) or releases (null) the keep annotation; returns the updated record. */
export async function setKeep(catalog: Catalog, layout: ServerLayout, rec: BackupRecord, target: KeepTarget | null): Promise<BackupRecord> {
  if (target !== null && rec.status !== 'DONE') {
    throw new BarmantsError('usage', `cannot keep backup ${rec.backupId}: its status is ${rec.status}, only DONE backups can be kept`, {
      hint: rec.status === 'WAITING_FOR_WALS' ? 'wait until its WAL is archived (backup --wait), then run keep again' : undefined,
    });
  }
  if (rec.keep === target) return rec;
  // backup.info first: if we die between the two, rebuild-catalog and the file agree.
  const next = { ...rec, keep: target };
  await writeBackupInfo(layout, next);
  return catalog.updateBackup(rec.server, rec.backupId, { keep: target });
}

/** Barman's `keep --status` words: `full`, `standalone` or `nokeep`. */
export function keepStatus(rec: BackupRecord): KeepTarget | 'nokeep' {
  return rec.keep ?? 'nokeep';
}
