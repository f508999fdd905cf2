/*
 * Maintenance: what `barmants cron` does once and the daemon does every maintenance_interval:
 * finish WAITING_FOR_WALS backups, compress WAL stored uncompressed, apply retention (backups
 * and WAL, every deletion logged with its reason), and report orphaned files.
 */
export { runMaintenance, maintainServer, serverLayout, type MaintenanceOptions, type ServerMaintenance } from './pass.js';
export { compressWal, type CompressWalOptions, type CompressWalResult } from './compress.js';
export { applyRetention, retentionReport, toRetentionBackup, type ApplyRetentionOptions, type RetentionOutcome } from './retention.js';
export { removeUnneededWal, type RemoveWalOptions, type WalRemoval } from './wal.js';
export { findOrphans, type FindOrphansOptions, type Orphan, type OrphanKind } from './orphans.js';
