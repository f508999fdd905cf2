// Errors the catalog throws. Callers map `kind` onto the application error table
// (errors/): e.g. a `wal-segment-conflict` becomes an errors/<name>.<ts>.duplicate entry.
// Kept local so the catalog depends on nothing but better-sqlite3.

import type { HistoryFileRecord, WalSegmentRecord } from './types.js';

export type CatalogErrorKind =
  | 'catalog-too-new' // the file was migrated by a newer barmants
  | 'catalog-outdated' // read-only open of a catalog that still needs migrations
  | 'catalog-open' // SQLite could not open or configure the file
  | 'unknown-server' // a row names a server that upsertServer never registered
  | 'backup-exists'
  | 'backup-name-taken'
  | 'backup-not-found'
  | 'invalid-value' // an LSN/segno out of int64 range, a bad status, an unknown patch field
  | 'wal-segment-conflict'
  | 'history-file-conflict';

export class CatalogError extends Error {
  readonly kind: CatalogErrorKind;
  readonly hint: string | undefined;

  constructor(kind: CatalogErrorKind, message: string, opts: { hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CatalogError';
    this.kind = kind;
    this.hint = opts.hint;
  }
}

/** The same segment (server, timeline, segno or name) arrived with different content. */
export class WalSegmentConflictError extends CatalogError {
  readonly existing: WalSegmentRecord;
  readonly incoming: WalSegmentRecord;

  constructor(existing: WalSegmentRecord, incoming: WalSegmentRecord) {
    super(
      'wal-segment-conflict',
      `wal segment ${incoming.name} of server "${incoming.server}" is already archived with checksum ` +
        `${existing.checksum} (${existing.name}), the new copy has ${incoming.checksum}`,
      { hint: 'the new copy must be set aside in errors/ as a duplicate; the archived one is kept' },
    );
    this.name = 'WalSegmentConflictError';
    this.existing = existing;
    this.incoming = incoming;
  }
}

/** A timeline history file arrived twice with different content. */
export class HistoryFileConflictError extends CatalogError {
  readonly existing: HistoryFileRecord;
  readonly incoming: HistoryFileRecord;

  constructor(existing: HistoryFileRecord, incoming: HistoryFileRecord) {
    super(
      'history-file-conflict',
      `history file ${incoming.name} of server "${incoming.server}" is already archived with checksum ` +
        `${existing.checksum}, the new copy has ${incoming.checksum}`,
      { hint: 'the new copy must be set aside in errors/ as a duplicate; the archived one is kept' },
    );
    this.name = 'HistoryFileConflictError';
    this.existing = existing;
    this.incoming = incoming;
  }
}
