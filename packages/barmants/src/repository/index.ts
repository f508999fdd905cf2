// The repository's low-level primitives: on-disk layout, durable writes, codecs, off-thread
// storing and hashing of files, locks and cluster identity. Higher layers (backup, wal,
// recovery) import from here, except on start-up-sensitive paths (get-wal, recover), which import
// the one module they need so as not to load the store workers' and hashing modules.
export { ServerLayout, catalogPath, locksDir, ensureDir, type LockPurpose } from './layout.js';
export {
  fsyncDir, writeFileDurable, DurableWriter, TmpFile, writeAll, writeAllSync, removeDurable, renameDurable, linkDurable, syncTree, makeTreeDurable,
  syncfsReportsErrors, TMP_SUFFIX,
} from './durable.js';
export {
  type Codec, CODECS, isCodec, codecSuffix, codecFromFileName, stripCodecSuffix, createCompressor,
  createDecompressor, compressWhole, decompressWhole, lz4DecompressSync, zstdDecompressSync, zstdFromZlib, DEFAULT_LEVELS,
} from './codec.js';
export { CONTENT_ALGORITHM, createContentHash, hashRawFile, hashBuffers, type ContentAlgorithm, type ContentHash, type ContentDigest } from './checksum.js';
export {
  StoreWorkerPool, hashFile, defaultStorePool, TRANSFER_BUFFER, FilePacker,
  type StoredFile, type StoredDigest, type StoreFileJob, type ReuseCandidate,
} from './store.js';
export { storeFile, hashStoredFile, PlainFileWriter } from './storing.js';
export {
  acquireLock, readLockOwner, ownerAlive, processStartTime, type Lock, type LockOwner, type AcquireOptions,
} from './lock.js';
export {
  checkIdentity, checkCatalogIdentity, readIdentity, type ClusterIdentity, type IdentityRecord, type IdentityCheck, type CatalogServerRecords,
} from './identity.js';
