/*
 * Failpoints for the fault-injection suite: `BARMANTS_FAILPOINT=name[,name…]` makes the process
 * SIGKILL itself at the named point, a crash at an exact moment. Read once at load; when unset a
 * call is one Set size check.
 */

/** Every failpoint the code calls, with the state a crash there leaves behind. */
export const FAILPOINTS = [
  { name: 'backup-mid-copy', description: 'backup: the 100th member is stored, the copy is not finished' },
  { name: 'backup-before-done', description: 'backup: the tree is synced, the catalog not yet WAITING_FOR_WALS' },
  { name: 'wal-after-store-before-catalog', description: 'WAL: the segment is durable in wals/, its catalog row not yet written' },
  { name: 'wal-after-catalog-before-unlink', description: 'WAL: the catalog row is written, the source in streaming/ not yet removed' },
  { name: 'delete-after-mark', description: 'delete: DELETING is recorded, the backup directory not yet removed' },
  { name: 'retention-before-delete-backup', description: 'retention: a backup is chosen for deletion, nothing of it removed yet' },
  { name: 'wal-retention-after-catalog-before-unlink', description: 'WAL retention: the catalog rows of a page of segments are deleted, their files not yet unlinked' },
] as const;

export type FailpointName = (typeof FAILPOINTS)[number]['name'];

const armed = new Set(
  (process.env.BARMANTS_FAILPOINT ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);

/** Dies by SIGKILL, without a word or any cleanup, when `name` is armed. */
export function failpoint(name: FailpointName): void {
  if (armed.size === 0 || !armed.has(name)) return;
  process.kill(process.pid, 'SIGKILL');
}
