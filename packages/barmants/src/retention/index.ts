/*
 * Retention: Barman's backup retention policies and WAL retention (`main`), as pure planners.
 * The cron/delete code feeds them catalog rows and acts on what they return.
 */
export {
  evaluateRetention,
  describePolicy,
  recoveryWindow,
  parseCatalogTime,
  type RetentionPolicy,
  type RetentionBackup,
  type RetentionVerdict,
  type RetentionInput,
  type RetentionReport,
} from './policy.js';
export { walRetention, type WalRetentionBackup, type WalRetentionInput, type WalRetentionResult } from './wal.js';
