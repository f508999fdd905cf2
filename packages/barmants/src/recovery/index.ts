// Public face of recovery: planning (pure), the restore engine, the recovery configuration
// writer and `recover()` itself.
export { planRecovery, type PlanBackup, type PlanInput, type RecoveryPlan, type TargetTimeline } from './plan.js';
export {
  parseTargetTime, parseTargetTimeDetailed, parseTargetXid, parseTargetLsn, describeTarget, formatTargetTimeForPostgres,
  type RecoveryTarget, type ParsedTargetTime,
} from './target.js';
export { readStoredBackupInfo, readMembers, checkMemberPath, type BackupMember, type StoredBackupInfo, type BackupTablespace } from './backup-files.js';
export {
  restoreMembers, markIncomplete, clearIncomplete, INCOMPLETE_MARKER, storedMemberPath,
  type RestoreOptions, type RestoreProgress, type RestoreSummary,
} from './restore.js';
export { parseTablespaceOption, placeTablespaces, rewriteTablespaceMap, linkTablespaces, type TablespacePlacement } from './tablespaces.js';
export {
  buildRecoveryFiles, recoverySettings, commentOutReplaced, scanDangerous, quoteConfValue, shellQuote, cpRestoreCommand,
  getWalRestoreCommand, walRestoreScriptCommand, WAL_DIR_NAME, DANGEROUS_SETTINGS,
  type TargetAction, type RecoveryFiles, type ConfLine,
} from './config.js';
export { walFilesForPlan, copyWalFiles, type WalFileToCopy } from './wal-copy.js';
export {
  recover, prepareRecovery, renderRecoverText, livePostmasterPid,
  type RecoverEnv, type RecoverOptions, type RecoverResult, type PreparedRecovery,
} from './execute.js';
