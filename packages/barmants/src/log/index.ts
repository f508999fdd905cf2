// Logging for barmants: a thin, context-scoped wrapper over winston (which server, which backup,
// which component), with Barman's level names. Every line passes through redactSecrets() in the
// format itself, so no caller can leak a password into a console or a log file by mistake.
// The log file is reopened on demand (the daemon does it on SIGHUP), the way logrotate expects:
// rename the file, send SIGHUP, and the next line starts a new file under the old name.

import { createRequire } from 'node:module';
import type winston from 'winston';
import { close as closeFd, open as openFd, write as writeFd } from 'node:fs';
import { Writable } from 'node:stream';

export type LogLevel = 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR' | 'CRITICAL';

export interface LogContext {
  server?: string;
  backup?: string;
  component?: string;
}

export interface Logger {
  debug(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
  critical(message: string, meta?: Record<string, unknown>): void;
  /** A logger whose lines carry this context on top of the parent's. */
  child(context: LogContext): Logger;
  /**
   * Reopens the log file by name: lines logged from now on go to whatever file the name points
   * at (a new one after logrotate renamed the old). Lines logged before still reach the old one.
   */
  reopen(): void;
  /** Changes the level of every logger sharing this one's destinations (a reloaded log_level). */
  setLevel(level: LogLevel | Lowercase<LogLevel> | string): void;
  /** Flushes and closes the transports (files); safe to call twice. */
  close(): Promise<void>;
}

export interface LoggerOptions {
  level?: LogLevel | Lowercase<LogLevel> | string;
  file?: string | null;
  console?: boolean;
  /** JSON lines instead of text, on every destination (log_format = json) */
  json?: boolean;
  /** Extra destination, mainly for tests and embedding: receives the console format. */
  stream?: Writable;
}

const SECRET = '********';

/**
 * Masks secrets in free text: `password=...` (also `sslpassword`, `PGPASSWORD`, quoted or not)
 * in conninfo strings and query strings, `scheme://user:secret@` in URLs, and `"password":"..."`
 * in JSON. Deliberately regex-based and dependency-free so anything can call it.
 */
export function redactSecrets(text: string): string {
  return text
    .replace(/(\b[a-z_]*password\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&'",;)]+)/gi, `$1${SECRET}`)
    .replace(/("[a-z_]*password"\s*:\s*)"(?:[^"\\]|\\.)*"/gi, `$1"${SECRET}"`)
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*):([^\s@/]*)@/gi, `$1:${SECRET}@`);
}

// Barman's level names, most severe first (winston's numbering convention).
const LEVELS: Record<string, number> = { critical: 0, error: 1, warning: 2, info: 3, debug: 4 };

function normaliseLevel(level: string | undefined): string {
  const l = (level ?? 'info').toLowerCase();
  if (l === 'warn') return 'warning';
  if (!(l in LEVELS)) throw new RangeError(`unknown log level '${level}': expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL`);
  return l;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** Local wall-clock time, as Barman writes it: `2026-11-27 10:00:00`. */
function timestamp(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function tag(info: winston.Logform.TransformableInfo): string {
  const server = info['server'] as string | undefined;
  const backup = info['backup'] as string | undefined;
  const component = info['component'] as string | undefined;
  let out = '';
  if (server !== undefined) out += backup !== undefined ? `[${server}/${backup}] ` : `[${server}] `;
  else if (backup !== undefined) out += `[${backup}] `;
  if (component !== undefined) out += `${component}: `;
  return out;
}

const CONTEXT_KEYS = new Set(['server', 'backup', 'component', 'level', 'message', 'timestamp']);

function extras(info: winston.Logform.TransformableInfo): string {
  const rest: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(info)) if (!CONTEXT_KEYS.has(k)) rest[k] = v;
  return Object.keys(rest).length === 0 ? '' : ` ${JSON.stringify(rest, jsonReplacer)}`;
}

function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

function textLine(info: winston.Logform.TransformableInfo): string {
  const line = `${timestamp(new Date())} ${String(info.level).toUpperCase().padEnd(5)} ${tag(info)}${String(info.message)}${extras(info)}`;
  return redactSecrets(line);
}

function jsonLine(info: winston.Logform.TransformableInfo): string {
  const record: Record<string, unknown> = { time: new Date().toISOString(), level: String(info.level).toUpperCase() };
  for (const [k, v] of Object.entries(info)) if (k !== 'level') record[k] = v;
  return redactSecrets(JSON.stringify(record, jsonReplacer));
}

// winston (and its dozens of modules) is loaded when the first line at an enabled level is
// logged: most commands (get-wal as restore_command, list-backups, check) log nothing at the
// default level and start about 60 ms faster and 10 MB smaller without it.
let winstonModule: typeof winston | undefined;
const loadWinston = (): typeof winston => (winstonModule ??= createRequire(import.meta.url)('winston') as typeof winston);

/** Queued like a line, so a reopen takes its place in the order of writes. */
const REOPEN_MARK = Buffer.from('\n');

/**
 * An append-only log file that can be reopened by name. Writes go through one file descriptor at
 * a time, in order (Writable serialises _write); reopen() is queued like a line, so what was
 * written before it still reaches the old file and what comes after goes to the file that has
 * the name when the queue gets there.
 */
export class ReopenableFile extends Writable {
  private fd: number | null = null;
  private reopenWanted = true;

  constructor(readonly path: string, private readonly mode = 0o600) {
    super({ decodeStrings: true });
  }

  reopen(): void {
    if (!this.writableEnded && !this.destroyed) this.write(REOPEN_MARK);
  }

  private openCurrent(cb: (err: Error | null) => void): void {
    openFd(this.path, 'a', this.mode, (err, fd) => {
      if (err) {
        // Keep writing to the old file rather than losing lines; say so where an operator looks.
        if (this.fd !== null) {
          process.stderr.write(`barmants: cannot reopen log file ${this.path}: ${err.message}; still writing to the previous one\n`);
          this.reopenWanted = false;
          cb(null);
        } else {
          cb(err);
        }
        return;
      }
      const old = this.fd;
      this.fd = fd;
      this.reopenWanted = false;
      if (old === null) cb(null);
      else closeFd(old, () => cb(null));
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (chunk === REOPEN_MARK) {
      this.reopenWanted = true;
      cb();
      return;
    }
    const write = (): void => {
      let off = 0;
      const next = (): void => {
        writeFd(this.fd!, chunk, off, chunk.length - off, null, (err, n) => {
          if (err) return cb(err);
          off += n;
          if (off < chunk.length) next();
          else cb();
        });
      };
      next();
    };
    if (this.reopenWanted || this.fd === null) {
      this.openCurrent((err) => (err ? cb(err) : write()));
    } else {
      write();
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    const fd = this.fd;
    this.fd = null;
    if (fd === null) cb();
    else closeFd(fd, () => cb());
  }
}

/** What the loggers of one createLogger() share: the level, the destinations, winston once built. */
interface Shared {
  level: string;
  files: ReopenableFile[];
  build: () => winston.Logger;
  base?: winston.Logger;
  closed?: Promise<void>;
}

class ScopedLogger implements Logger {
  constructor(
    private readonly context: LogContext,
    private readonly shared: Shared,
  ) {}

  private log(level: string, message: string, meta?: Record<string, unknown>): void {
    if (LEVELS[level]! > LEVELS[this.shared.level]!) return;
    const base = (this.shared.base ??= this.shared.build());
    base.log({ ...(meta ?? {}), ...this.context, level, message });
  }

  debug(message: string, meta?: Record<string, unknown>): void { this.log('debug', message, meta); }
  info(message: string, meta?: Record<string, unknown>): void { this.log('info', message, meta); }
  warn(message: string, meta?: Record<string, unknown>): void { this.log('warning', message, meta); }
  error(message: string, meta?: Record<string, unknown>): void { this.log('error', message, meta); }
  critical(message: string, meta?: Record<string, unknown>): void { this.log('critical', message, meta); }

  child(context: LogContext): Logger {
    return new ScopedLogger({ ...this.context, ...context }, this.shared);
  }

  reopen(): void {
    for (const f of this.shared.files) f.reopen();
  }

  setLevel(level: string): void {
    this.shared.level = normaliseLevel(level);
    if (this.shared.base) this.shared.base.level = this.shared.level;
  }

  close(): Promise<void> {
    if (this.shared.closed) return this.shared.closed;
    this.shared.closed = (async () => {
      // Every transport has taken its lines once it finishes; then the files are flushed and closed.
      const base = this.shared.base;
      if (base) {
        const finished = base.transports.map(
          (t) => new Promise<void>((resolve) => ((t as unknown as { writableFinished?: boolean }).writableFinished ? resolve() : t.once('finish', () => resolve()))),
        );
        base.end();
        await Promise.all(finished);
      }
      await Promise.all(
        this.shared.files.map(
          (f) =>
            new Promise<void>((resolve) => {
              if (f.writableFinished || f.destroyed) return resolve();
              f.once('finish', () => resolve());
              f.once('error', () => resolve());
              f.end();
            }),
        ),
      );
    })();
    return this.shared.closed;
  }
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const files: ReopenableFile[] = opts.file ? [new ReopenableFile(opts.file)] : [];
  const shared: Shared = {
    level: normaliseLevel(opts.level),
    files,
    build: () => {
      const w = loadWinston();
      const format = w.format.printf(opts.json ? jsonLine : textLine);
      const transports: winston.transport[] = [];
      if (opts.console ?? true) {
        // All levels to stderr: stdout belongs to command output that scripts parse.
        transports.push(new w.transports.Console({ format, stderrLevels: Object.keys(LEVELS) }));
      }
      for (const file of files) transports.push(new w.transports.Stream({ stream: file, format }));
      if (opts.stream) transports.push(new w.transports.Stream({ stream: opts.stream, format }));
      return w.createLogger({ levels: LEVELS, level: shared.level, transports, exitOnError: false, silent: transports.length === 0 });
    },
  };
  return new ScopedLogger({}, shared);
}

/** A logger that drops everything: for tests and for library use without a CLI. */
export function nullLogger(): Logger {
  const logger: Logger = {
    debug() {},
    info() {},
    warn() {},
    error() {},
    critical() {},
    child: () => logger,
    reopen() {},
    setLevel() {},
    close: () => Promise.resolve(),
  };
  return logger;
}
