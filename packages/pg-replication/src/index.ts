/*
 * pg-replication: PostgreSQL's physical replication protocol (BASE_BACKUP, START_REPLICATION,
 * slots, timeline history) on top of `pg`, plus the WAL, LSN and manifest arithmetic that goes
 * with it. Knows nothing of barmants.
 */
export * from './errors.js';
export * from './lsn.js';
export * from './walfile.js';
export * from './history.js';
export * from './checksum.js';
export * from './manifest.js';
export * from './messages.js';
export * from './conninfo.js';
export { ReplicationClient, loadPg, parseServerVersion, quoteIdent, quoteLiteral } from './client.js';
export type { SystemIdentification, SlotInfo, TimelineHistoryFile } from './client.js';
export { buildBaseBackupCommand } from './basebackup.js';
export type { BaseBackupOptions, BaseBackupHandlers, BaseBackupResult, BackupEntry, BackupStartInfo, MemberSink, TablespaceInfo, EntryType } from './basebackup.js';
export { TarParser, TarFormatError } from './tar.js';
export type { TarHeader, TarEvents, TarMemberType } from './tar.js';
export { WalStream } from './stream.js';
export type { StartReplicationOptions, WalChunk, WalMessage, StreamEnd } from './stream.js';
export { ReplicationCommand } from './command.js';
export type { ResultSet } from './command.js';
