/*
 * Monitoring: `check` (console, JSON, Nagios), `status` and `diagnose` data. Facts are gathered
 * once per server (gather), judged by pure verdict functions (verdicts), and rendered (render,
 * status). The CLI commands live in cli/commands/monitor.ts.
 */
export type { CheckStatus, CheckResult, Perfdata, ServerFacts, SqlFacts, StreamingFacts, RepositoryFacts, ServerCheckReport, Unreachable, SlotFacts, BackupFact, DirectoryFact } from './types.js';
export {
  evaluateChecks, checkCatalog, checkPostgres, checkBackupPrivileges, checkStreaming, checkWalLevel, checkReplicationSlot, slotThresholds,
  checkDirectories, checkRetentionSettings, checkBackupMaximumAge, checkBackupMinimumSize, checkWalMaximumAge, checkCompression,
  checkFailedBackups, checkMinimumRedundancy, checkSystemId, checkReceiveWal, checkWalContinuity, checkArchiverErrors, summariseErrorFiles,
  checkFreeSpace, checkPgVersion, lastDoneBackup, NEAR_THRESHOLD, HEARTBEAT_STALE_SEC, FREE_SPACE_MARGIN, SUPPORTED_MAJORS,
  type CheckSettings,
} from './verdicts.js';
export { renderChecksConsole, checksJson, checkLine, renderNagios, nagiosUnknown, formatPerfdata, reportPasses, NAGIOS_EXIT, type NagiosState } from './render.js';
export { gatherFacts, gatherRepository, type GatherOptions } from './gather.js';
export { runChecks, gatherAll, codecAvailable, type RunChecksOptions } from './run.js';
export { buildStatus, statusLines, type ServerStatus, type StatusSettings } from './status.js';
export { nextScheduled } from './schedule.js';
