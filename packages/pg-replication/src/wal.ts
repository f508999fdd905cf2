/*
 * `pg-replication/wal`: the LSN, WAL file name and timeline history arithmetic alone, for callers
 * that name, order and plan WAL files without speaking the protocol (a restore_command runs once
 * per segment): importing it loads neither pg, nor net, nor the CRC32C add-on.
 */
export * from './lsn.js';
export * from './walfile.js';
export * from './history.js';
