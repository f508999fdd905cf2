// Logging for barmants: a thin, context-scoped wrapper over winston (which server, which backup,
// which component), with Barman's level names. Every line passes through redactSecrets() in the
// format itself, so no caller can leak a password into a console or a log file by mistake.

import winston from 'winston';
import type { Writable } from 'node:stream';

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
  /** Flushes and closes the transports (files); safe to call twice. */
  close(): Promise<void>;
}

export interface LoggerOptions {
  level?: LogLevel | Lowercase<LogLevel> | string;
  file?: string | null;
  console?: boolean;
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

const textFormat = winston.format.printf((info) => {
  const line = `${timestamp(new Date())} ${String(info.level).toUpperCase().padEnd(5)} ${tag(info)}${String(info.message)}${extras(info)}`;
  return redactSecrets(line);
});

const jsonFormat = winston.format.printf((info) => {
  const record: Record<string, unknown> = { time: new Date().toISOString(), level: String(info.level).toUpperCase() };
  for (const [k, v] of Object.entries(info)) if (k !== 'level') record[k] = v;
  return redactSecrets(JSON.stringify(record, jsonReplacer));
});

class ScopedLogger implements Logger {
  constructor(
    private readonly base: winston.Logger,
    private readonly context: LogContext,
  ) {}

  private log(level: string, message: string, meta?: Record<string, unknown>): void {
    this.base.log({ ...(meta ?? {}), ...this.context, level, message });
  }

  debug(message: string, meta?: Record<string, unknown>): void { this.log('debug', message, meta); }
  info(message: string, meta?: Record<string, unknown>): void { this.log('info', message, meta); }
  warn(message: string, meta?: Record<string, unknown>): void { this.log('warning', message, meta); }
  error(message: string, meta?: Record<string, unknown>): void { this.log('error', message, meta); }
  critical(message: string, meta?: Record<string, unknown>): void { this.log('critical', message, meta); }

  child(context: LogContext): Logger {
    return new ScopedLogger(this.base, { ...this.context, ...context });
  }

  close(): Promise<void> {
    if (this.closed) return this.closed;
    this.closed = new Promise<void>((resolve) => {
      const files = this.base.transports.filter((t) => t instanceof winston.transports.File);
      if (files.length === 0) {
        this.base.close();
        resolve();
        return;
      }
      let pending = files.length;
      for (const t of files) t.once('finish', () => { if (--pending === 0) resolve(); });
      this.base.end();
    });
    return this.closed;
  }

  private closed: Promise<void> | undefined;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = normaliseLevel(opts.level);
  const transports: winston.transport[] = [];
  if (opts.console ?? true) {
    // All levels to stderr: stdout belongs to command output that scripts parse.
    transports.push(new winston.transports.Console({ format: textFormat, stderrLevels: Object.keys(LEVELS) }));
  }
  if (opts.file) {
    transports.push(new winston.transports.File({ filename: opts.file, format: opts.json ? jsonFormat : textFormat }));
  }
  if (opts.stream) {
    transports.push(new winston.transports.Stream({ stream: opts.stream, format: opts.json ? jsonFormat : textFormat }));
  }
  const base = winston.createLogger({ levels: LEVELS, level, transports, exitOnError: false, silent: transports.length === 0 });
  return new ScopedLogger(base, {});
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
    close: () => Promise.resolve(),
  };
  return logger;
}
