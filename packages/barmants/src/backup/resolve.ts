// Naming a backup: ids, names and the keywords latest/last, oldest/first, last-failed. When the
// name leads nowhere, the error says what the server does have: "latest" on a server whose only
// backup waits for its WAL must say so, not that the backup "does not exist".
import type { BackupRecord, Catalog } from '../catalog/index.js';
import { BarmantsError } from '../errors/index.js';

const DONE_KEYWORDS = new Set(['latest', 'last', 'oldest', 'first']);

/** The backup `ref` names, or an error that says what exists instead. */
export function resolveBackupRef(catalog: Catalog, server: string, ref: string): BackupRecord {
  const rec = catalog.resolveBackupId(server, ref);
  if (rec) return rec;
  throw backupNotFound(catalog, server, ref);
}

export function backupNotFound(catalog: Catalog, server: string, ref: string): BarmantsError {
  const all = catalog.listBackups(server);
  if (all.length === 0) {
    return new BarmantsError('notFound', `server '${server}' has no backup yet`, { hint: `take one with \`barmants backup ${server}\`` });
  }
  if (ref === 'last-failed') {
    return new BarmantsError('notFound', `server '${server}' has no FAILED backup`, { hint: `run \`barmants list-backups ${server}\`` });
  }
  if (DONE_KEYWORDS.has(ref)) {
    // listBackups is in id order, oldest first.
    const newest = all[all.length - 1]!;
    const others = all.length > 1 ? ` (and ${all.length - 1} other(s), none DONE)` : '';
    const message = `server '${server}' has no DONE backup for '${ref}': the newest, ${newest.backupId}, is ${newest.status}${others}`;
    const show = `\`barmants show-backup ${server} ${newest.backupId}\``;
    switch (newest.status) {
      case 'WAITING_FOR_WALS':
        return new BarmantsError('notFound', message, {
          hint: `its WAL is not archived yet: run \`barmants receive-wal ${server}\` (or the daemon), or take backups with --wal; ${show} says which segments it waits for`,
        });
      case 'FAILED':
        return new BarmantsError('notFound', message, { hint: `${show} says why it failed; take a new one with \`barmants backup ${server}\`` });
      default:
        return new BarmantsError('notFound', message, { hint: `wait for it to finish (${show}), or name a backup by its id` });
    }
  }
  return new BarmantsError('notFound', `unknown backup '${ref}' for server '${server}'`, {
    hint: `list the backups with \`barmants list-backups ${server}\` (latest/oldest only name DONE backups)`,
  });
}
