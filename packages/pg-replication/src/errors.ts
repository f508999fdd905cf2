/*
 * Typed errors of the replication library. Callers branch on `kind`: a `server` error carries
 * the walsender's SQLSTATE and message (bad slot, removed WAL, auth), `connection` means the
 * socket is gone (retry with backoff), `protocol` means the peer sent something we cannot parse.
 */
export type ReplicationErrorKind = 'server' | 'connection' | 'protocol';

export class ReplicationError extends Error {
  readonly kind: ReplicationErrorKind;
  /** SQLSTATE when the server refused (e.g. '58P01' WAL removed, '42704' unknown slot, '28P01' bad password) */
  readonly code: string | undefined;
  readonly severity: string | undefined;
  readonly detail: string | undefined;
  readonly hint: string | undefined;

  constructor(
    kind: ReplicationErrorKind,
    message: string,
    opts: { code?: string; severity?: string; detail?: string; hint?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ReplicationError';
    this.kind = kind;
    this.code = opts.code;
    this.severity = opts.severity;
    this.detail = opts.detail;
    this.hint = opts.hint;
  }
}

/** SQLSTATEs the callers care about, named. */
export const SqlState = {
  InvalidPassword: '28P01',
  InvalidAuthorization: '28000',
  InsufficientPrivilege: '42501',
  SyntaxError: '42601',
  UndefinedObject: '42704',
  DuplicateObject: '42710',
  UndefinedFile: '58P01',
  FeatureNotSupported: '0A000',
  ObjectInUse: '55006',
  AdminShutdown: '57P01',
  InternalError: 'XX000',
} as const;

interface PgDatabaseErrorLike {
  message: string;
  code?: string;
  severity?: string;
  detail?: string;
  hint?: string;
}

/** Turns whatever pg reported into a ReplicationError. */
export function toReplicationError(err: unknown, context?: string): ReplicationError {
  if (err instanceof ReplicationError) return err;
  const prefix = context ? `${context}: ` : '';
  const e = err as PgDatabaseErrorLike | undefined;
  if (e && typeof e === 'object' && typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) {
    // 57P01 during a copy is the server going away, not a refusal: treat it as a lost connection.
    const kind: ReplicationErrorKind = e.code === SqlState.AdminShutdown ? 'connection' : 'server';
    return new ReplicationError(kind, `${prefix}${e.message}`, {
      code: e.code,
      severity: e.severity,
      detail: e.detail,
      hint: e.hint,
      cause: err,
    });
  }
  const message = err instanceof Error ? err.message : String(err);
  if (/received invalid response|unexpected .* message/i.test(message)) {
    return new ReplicationError('protocol', `${prefix}${message}`, { cause: err });
  }
  return new ReplicationError('connection', `${prefix}${message}`, { cause: err });
}
