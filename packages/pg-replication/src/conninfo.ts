/*
 * libpq connection strings (`host=h port=5432 user=u` or `postgresql://u@h:5432/db?sslmode=...`)
 * and `.pgpass` files, turned into a pg.ClientConfig. pg's own pgpass support is deprecated and
 * matches the wrong database name for replication connections, so the passfile is read here with
 * libpq's rules (PROTOCOL.md §1, pitfall 9).
 */
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { ClientConfig } from 'pg';
import type { ConnectionOptions as TlsOptions } from 'node:tls';

export type Conninfo = Record<string, string>;

const SECRET = '********';

/** A malformed connection string; the message says what libpq would have said. */
export class ConninfoSyntaxError extends TypeError {
  override readonly name = 'ConninfoSyntaxError';
}

interface Span {
  key: string;
  value: string;
  /** Offsets of the value's text (quotes included) in the source string. */
  valueStart: number;
  valueEnd: number;
}

function isUrl(s: string): boolean {
  return /^\s*postgres(ql)?:\/\//i.test(s);
}

function scanKeyValue(s: string): Span[] {
  const spans: Span[] = [];
  let i = 0;
  const n = s.length;
  const ws = (c: string | undefined) => c !== undefined && /\s/.test(c);
  while (i < n) {
    while (ws(s[i])) i++;
    if (i >= n) break;
    const keyStart = i;
    while (i < n && s[i] !== '=' && !ws(s[i])) i++;
    const key = s.slice(keyStart, i);
    while (ws(s[i])) i++;
    if (s[i] !== '=') throw new ConninfoSyntaxError(`missing "=" after "${key}" in connection string`);
    if (key === '') throw new ConninfoSyntaxError('empty keyword before "=" in connection string');
    i++;
    while (ws(s[i])) i++;
    const valueStart = i;
    let value = '';
    if (s[i] === "'") {
      i++;
      let closed = false;
      while (i < n) {
        const c = s[i]!;
        if (c === '\\' && i + 1 < n) {
          value += s[i + 1];
          i += 2;
        } else if (c === "'") {
          i++;
          closed = true;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (!closed) throw new ConninfoSyntaxError(`unterminated quoted value for "${key}" in connection string`);
    } else {
      while (i < n && !ws(s[i])) {
        if (s[i] === '\\' && i + 1 < n) {
          value += s[i + 1];
          i += 2;
        } else {
          value += s[i];
          i++;
        }
      }
    }
    spans.push({ key: key.toLowerCase(), value, valueStart, valueEnd: i });
  }
  return spans;
}

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new ConninfoSyntaxError(`invalid percent-encoding in the ${what} of the connection URL`);
  }
}

function parseUrl(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  let rest = s.trim().replace(/^postgres(ql)?:\/\//i, '');
  const q = rest.indexOf('?');
  let query = '';
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  const slash = rest.indexOf('/');
  let authority = rest;
  if (slash >= 0) {
    authority = rest.slice(0, slash);
    const db = rest.slice(slash + 1);
    if (db !== '') out['dbname'] = decode(db, 'database name');
  }
  const atSign = authority.lastIndexOf('@');
  if (atSign >= 0) {
    const userinfo = authority.slice(0, atSign);
    authority = authority.slice(atSign + 1);
    const colon = userinfo.indexOf(':');
    const user = colon >= 0 ? userinfo.slice(0, colon) : userinfo;
    if (user !== '') out['user'] = decode(user, 'user name');
    if (colon >= 0) out['password'] = decode(userinfo.slice(colon + 1), 'password');
  }
  if (authority !== '') {
    const hosts: string[] = [];
    const ports: string[] = [];
    for (const hp of authority.split(',')) {
      let host = hp;
      let port = '';
      const v6 = /^\[([^\]]*)\](?::(.*))?$/.exec(hp);
      if (v6) {
        host = v6[1]!;
        port = v6[2] ?? '';
      } else {
        const c = hp.lastIndexOf(':');
        if (c >= 0) {
          host = hp.slice(0, c);
          port = hp.slice(c + 1);
        }
      }
      if (port !== '' && !/^\d+$/.test(port)) throw new ConninfoSyntaxError(`invalid port "${port}" in the connection URL`);
      hosts.push(decode(host, 'host'));
      ports.push(port);
    }
    if (hosts.some((h) => h !== '')) out['host'] = hosts.join(',');
    if (ports.some((p) => p !== '')) out['port'] = ports.join(',');
  }
  if (query !== '') {
    for (const pair of query.split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new ConninfoSyntaxError(`invalid URI query parameter "${pair}"`);
      const key = decode(pair.slice(0, eq), 'query');
      out[key.toLowerCase()] = decode(pair.slice(eq + 1).replace(/\+/g, ' '), 'query');
    }
  }
  return out;
}

/**
 * Parses a libpq connection string (either form) into keyword → value. Throws
 * ConninfoSyntaxError with libpq-like wording; the config loader adds file:line.
 */
export function parseConninfo(s: string): Conninfo {
  if (isUrl(s)) return parseUrl(s);
  const out: Record<string, string> = {};
  for (const span of scanKeyValue(s)) out[span.key] = span.value;
  return out;
}

/** Quotes a value for the key=value form when it needs it. */
export function quoteConninfoValue(v: string): string {
  if (v !== '' && !/[\s'\\]/.test(v)) return v;
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Builds a key=value connection string (used to add replication=true and friends). */
export function formatConninfo(params: Record<string, string>): string {
  return Object.entries(params)
    .map(([k, v]) => `${k}=${quoteConninfoValue(v)}`)
    .join(' ');
}

/**
 * Replaces the password (if any) with asterisks, keeping the rest of the string as written.
 * A string that does not parse is masked by pattern instead, never returned as is.
 */
export function maskConninfo(s: string): string {
  if (isUrl(s)) {
    return s
      .replace(/^(\s*postgres(?:ql)?:\/\/[^:@/?]*):[^@/?]*@/i, `$1:${SECRET}@`)
      .replace(/([?&][a-z_]*password=)[^&]*/gi, `$1${SECRET}`);
  }
  try {
    const spans = scanKeyValue(s);
    let out = s;
    for (const span of spans.slice().reverse()) {
      if (span.key.endsWith('password')) out = out.slice(0, span.valueStart) + SECRET + out.slice(span.valueEnd);
    }
    return out;
  } catch {
    return s.replace(/([a-z_]*password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S+)/gi, `$1${SECRET}`);
  }
}

/** One line of a passfile: each field may be '*'. */
interface PassEntry {
  host: string;
  port: string;
  database: string;
  user: string;
  password: string;
}

function splitPassLine(line: string): string[] {
  const fields: string[] = [];
  let cur = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
    } else if (c === ':') {
      fields.push(cur);
      cur = '';
    } else cur += c;
  }
  fields.push(cur);
  return fields;
}

export function parsePassfile(content: string): PassEntry[] {
  const out: PassEntry[] = [];
  for (const raw of content.split(/\r?\n/)) {
    if (!raw.trim() || raw.trimStart().startsWith('#')) continue;
    const f = splitPassLine(raw);
    if (f.length < 5) continue;
    out.push({ host: f[0]!, port: f[1]!, database: f[2]!, user: f[3]!, password: f.slice(4).join(':') });
  }
  return out;
}

/**
 * Looks a password up the way libpq does: first matching line wins; a replication connection
 * matches the database name `replication`; unix-socket hosts match `localhost`.
 * A passfile readable by group or others is ignored, as libpq does.
 */
export function lookupPassword(
  file: string,
  q: { host: string; port: string | number; database: string; user: string },
): string | undefined {
  let content: string;
  try {
    const st = statSync(file);
    if (!st.isFile() || (st.mode & 0o077) !== 0) return undefined;
    content = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const host = q.host.startsWith('/') ? 'localhost' : q.host;
  const m = (pattern: string, value: string) => pattern === '*' || pattern === value;
  for (const e of parsePassfile(content)) {
    if (m(e.host, host) && m(e.port, String(q.port)) && m(e.database, q.database) && m(e.user, q.user)) return e.password;
  }
  return undefined;
}

export function defaultPassfile(env: NodeJS.ProcessEnv = process.env): string {
  return env.PGPASSFILE || join(homedir(), '.pgpass');
}

export interface ConnectOptions {
  /** libpq conninfo string or URL; explicit fields below override it */
  connectionString?: string;
  host?: string;
  port?: number;
  user?: string;
  password?: string | (() => string | Promise<string>);
  database?: string;
  passfile?: string;
  applicationName?: string;
  /** passed through to node's TLS; `true` = TLS with certificate verification */
  ssl?: boolean | TlsOptions;
  connectTimeoutMs?: number;
  /**
   * Replication connections only: how long a simple command (IDENTIFY_SYSTEM, SHOW, slot
   * commands, TIMELINE_HISTORY) may wait for its answer before the connection is presumed dead and
   * dropped, as a half-open TCP connection would otherwise hold it forever. 0 or absent: no limit.
   */
  commandTimeoutMs?: number;
}

function sslFromConninfo(info: Conninfo): boolean | TlsOptions | undefined {
  const mode = info.sslmode;
  if (!mode) return undefined;
  const files: TlsOptions = {};
  if (info.sslrootcert) files.ca = readFileSync(info.sslrootcert);
  if (info.sslcert) files.cert = readFileSync(info.sslcert);
  if (info.sslkey) files.key = readFileSync(info.sslkey);
  switch (mode) {
    case 'disable':
    case 'allow':
    case 'prefer':
      // pg cannot fall back between TLS and clear text; libpq's prefer/allow start without TLS here.
      return false;
    case 'require':
      return { ...files, rejectUnauthorized: false };
    case 'verify-ca':
      return { ...files, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case 'verify-full':
      return { ...files, rejectUnauthorized: true };
    default:
      throw new TypeError(`invalid sslmode "${mode}": expected disable, allow, prefer, require, verify-ca or verify-full`);
  }
}

/**
 * Builds the pg.ClientConfig for a connection. `replication` adds the physical-walsender startup
 * parameter and sets database to `replication` for passfile matching.
 */
export function toClientConfig(opts: ConnectOptions | string, replication: boolean, env: NodeJS.ProcessEnv = process.env): ClientConfig {
  const o: ConnectOptions = typeof opts === 'string' ? { connectionString: opts } : opts;
  const info = o.connectionString ? parseConninfo(o.connectionString) : {};
  const host = o.host ?? info.host ?? info.hostaddr ?? env.PGHOST ?? 'localhost';
  const port = o.port ?? (info.port ? Number(info.port) : env.PGPORT ? Number(env.PGPORT) : 5432);
  const user = o.user ?? info.user ?? env.PGUSER ?? (process.env.USER || 'postgres');
  const database = replication ? 'replication' : (o.database ?? info.dbname ?? env.PGDATABASE ?? user);
  const passfile = o.passfile ?? info.passfile ?? defaultPassfile(env);
  const explicit = o.password ?? info.password ?? env.PGPASSWORD;
  const password =
    explicit !== undefined
      ? explicit
      : async () => {
          const p = lookupPassword(passfile, { host, port, database, user });
          if (p === undefined) {
            throw new Error(
              `the server asks for a password for user "${user}" but none was given: add it to the passfile ${passfile} (mode 0600) or set PGPASSWORD`,
            );
          }
          return p;
        };
  const cfg: ClientConfig & { replication?: boolean } = {
    host,
    port,
    user,
    database,
    password,
    application_name: o.applicationName ?? info.application_name,
    connectionTimeoutMillis: o.connectTimeoutMs ?? (info.connect_timeout ? Number(info.connect_timeout) * 1000 : 30_000),
    keepAlive: true,
  };
  const ssl = o.ssl ?? sslFromConninfo(info);
  if (ssl !== undefined) cfg.ssl = ssl;
  if (info.options) cfg.options = info.options;
  if (replication) cfg.replication = true;
  return cfg;
}
