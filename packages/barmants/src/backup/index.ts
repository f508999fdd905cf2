/*
 * Base backups: taking them (executor), their self-describing files (backup.info, files.jsonl)
 * and their lifecycle (interrupted → FAILED, WAITING_FOR_WALS → DONE).
 */
export { runBackup, type BackupOptions, type BackupDeps, type BackupProgress } from './executor.js';
export {
  toInfoJson,
  fromInfoJson,
  writeBackupInfo,
  readBackupInfo,
  readFileList,
  readFileListAt,
  storedPath,
  checkMemberPath,
  FileListWriter,
  FILE_LIST,
  type FileEntry,
  type MemberType,
} from './info.js';
export { repairInterruptedBackups, completeBackupIfArchived, completeWaitingBackups, removeTempFiles } from './lifecycle.js';
export { backupIdFor, isoLocal, BACKUP_ID_RE, RESERVED_BACKUP_NAMES } from './time.js';
export { verifyBackup, type VerifyReport, type VerifyProblem } from './verify.js';
export { deleteBackup, checkDeletable, finishInterruptedDeletes, type DeleteResult, type DeleteDeps } from './delete.js';
export { setKeep, keepStatus } from './keep.js';
export { rebuildCatalog, type RebuildReport } from './rebuild.js';
export { ProgressTracker, describeProgress, periodicProgressLogger, type ProgressView, type ProgressSample } from './progress.js';
