// The closed vocabulary of barmants errors, declared once as data (kind, exit status, hint),
// and the one way the CLI prints them. Every module throws BarmantsError(kind, ...) so the exit
// status and the "what to do next" hint never drift between commands.

export const ERRORS = {
  config: {
    exit: 2,
    hint: 'fix the configuration file and line named above, then run `barmants check`',
  },
  usage: {
    exit: 2,
    hint: 'run `barmants --help` or `barmants <command> --help` for the accepted arguments',
  },
  connection: {
    exit: 3,
    hint: 'check conninfo/streaming_conninfo, pg_hba.conf, the passfile and that PostgreSQL is running',
  },
  server: {
    exit: 4,
    hint: 'PostgreSQL refused the request: read its log and the SQLSTATE above',
  },
  notFound: {
    exit: 5,
    hint: 'run `barmants list-servers` or `barmants list-backups <server>` to see what exists',
  },
  lock: {
    exit: 6,
    hint: 'another barmants process holds this lock: wait for it, or check that it is still alive',
  },
  integrity: {
    exit: 7,
    hint: 'the repository content does not match its catalog: run `barmants verify-backup` and keep the files for inspection',
  },
  unsafe: {
    exit: 8,
    hint: 'barmants refused an operation that could lose data; re-read the message before forcing it',
  },
  gap: {
    exit: 9,
    hint: 'WAL is missing between the backup and the target: run `barmants check` and `barmants list-wals` to find the hole',
  },
  io: {
    exit: 10,
    hint: 'check free space, permissions and the health of the filesystem holding the repository',
  },
  hook: {
    exit: 11,
    hint: 'a hook script failed or asked to abort: run it by hand with the BARMAN_* environment to see why',
  },
  internal: {
    exit: 1,
    hint: 'this is a bug in barmants: rerun with -d and report the output',
  },
} as const satisfies Record<string, { exit: number; hint: string }>;

export type ErrorKind = keyof typeof ERRORS;

export class BarmantsError extends Error {
  readonly kind: ErrorKind;
  readonly exitCode: number;
  readonly hint: string;

  constructor(kind: ErrorKind, message: string, opts: { hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'BarmantsError';
    this.kind = kind;
    this.exitCode = ERRORS[kind].exit;
    this.hint = opts.hint ?? ERRORS[kind].hint;
  }
}

export function isBarmantsError(err: unknown, kind?: ErrorKind): err is BarmantsError {
  return err instanceof BarmantsError && (kind === undefined || err.kind === kind);
}

/**
 * A system call's failure (ENOSPC, EACCES, EIO, EROFS...) that reached the top without a barmants
 * error around it: a file system problem to fix, not a bug to report.
 */
export function isSystemError(err: unknown): err is NodeJS.ErrnoException {
  const e = err as NodeJS.ErrnoException | null;
  return err instanceof Error && typeof e!.code === 'string' && /^E[A-Z0-9]+$/.test(e!.code) && typeof e!.syscall === 'string';
}

/** The process exit status for any thrown value: system call failures are I/O, other foreign errors internal bugs. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof BarmantsError) return err.exitCode;
  return isSystemError(err) ? ERRORS.io.exit : ERRORS.internal.exit;
}

/**
 * The CLI's rendering: `barmants: error: <message>` then `HINT: <hint>`. Stacks (and the chain
 * of causes) only in debug mode, because operators read the first line and scripts grep it.
 */
export function formatError(err: unknown, debug: boolean): string {
  const message = err instanceof Error ? err.message : String(err);
  const hint = err instanceof BarmantsError ? err.hint : isSystemError(err) ? ERRORS.io.hint : ERRORS.internal.hint;
  const lines = [`barmants: error: ${message}`, `HINT: ${hint}`];
  if (debug) {
    let current: unknown = err;
    let depth = 0;
    while (current !== undefined && current !== null && depth < 8) {
      if (current instanceof Error) {
        lines.push(depth === 0 ? (current.stack ?? current.message) : `caused by: ${current.stack ?? current.message}`);
        current = current.cause;
      } else {
        if (depth > 0) lines.push(`caused by: ${String(current)}`);
        current = undefined;
      }
      depth++;
    }
  }
  return lines.join('\n');
}
