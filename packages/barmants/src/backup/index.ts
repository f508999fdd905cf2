/*
 * Base backups: taking them (executor), their self-describing files (backup.info, files.jsonl)
 * and their lifecycle (interrupted → FAILED, WAITING_FOR_WALS → DONE).
 */
export { runBackup, removeTempFiles, type BackupOptions, type BackupDeps, type BackupProgress } from './executor.js';
export {
  toInfoJson,
  fromInfoJson,
  writeBackupInfo,
  readBackupInfo,
  readFileList,
  storedPath,
  checkMemberPath,
  FileListWriter,
  FILE_LIST,
  type FileEntry,
  type MemberType,
} from './info.js';
export { repairInterruptedBackups, completeBackupIfArchived, completeWaitingBackups } from './lifecycle.js';
export { backupIdFor, isoLocal, BACKUP_ID_RE, RESERVED_BACKUP_NAMES } from './time.js';
