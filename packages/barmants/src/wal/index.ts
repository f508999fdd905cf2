/*
 * WAL: the streaming receiver (one per server), archiving of segments and history files into
 * `wals/` (shared with backups), and get-wal (what a restore_command reads).
 */
export { WalReceiver, resetReceiver, readSlotInfo } from './receiver.js';
export type { WalReceiverOptions, ReceiverState } from './receiver.js';
export { archiveSegment, archivePartialSegment, archiveHistoryFile, archivedPartialPath, errorsPath, setAside } from './archive.js';
export type { ArchiveOutcome, ArchivedSegment, SegmentSource } from './archive.js';
export { getWal, readWal, locateWal, listStreamingDir } from './getwal.js';
export type { WalFileLocation } from './getwal.js';
export { ancestryFromCatalog, divergencePoint, firstSegmentStillOnServer, parseSynchronousStandbyNames, isSynchronousStandby, backoffDelay } from './resume.js';
export type { TimelineLine } from './resume.js';
