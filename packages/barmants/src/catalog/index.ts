// Public face of the catalog: the SQLite index of the repository.
// Other folders import from here only; the SQL stays inside catalog/.

export { Catalog } from './catalog.js';
export { CatalogError, HistoryFileConflictError, WalSegmentConflictError } from './errors.js';
export type { CatalogErrorKind } from './errors.js';
export { LATEST_SCHEMA_VERSION } from './migrations.js';
export { BACKUP_STATUSES } from './types.js';
export type {
  BackupPatch,
  BackupRecord,
  BackupStatus,
  CatalogOpenOptions,
  HistoryFileRecord,
  KeepTarget,
  ListBackupsOptions,
  ListWalSegmentsOptions,
  NewBackupRecord,
  ReceiverHeartbeat,
  SegnoRange,
  ServerIdentity,
  ServerRecord,
  TablespaceRecord,
  WalSegmentRecord,
} from './types.js';
