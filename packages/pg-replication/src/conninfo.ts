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

/** Parses a libpq key/value connection string or a postgres:// URL into its keywords. */
export function parseConninfo(text: string): Conninfo {
  const s = text.trim();
  if (/^postgres(ql)?:\/\//i.test(s)) return parseConninfoUrl(s);
  const out: Conninfo = {};
  let i = 0;
  const ws = () => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  while (true) {
    ws();
    if (i >= s.length) break;
    const keyStart = i;
    while (i < s.length && /[A-Za-z0-9_]/.test(s[i]!)) i++;
    const key = s.slice(keyStart, i);
    ws();
    if (!key || s[i] !== '=') {
      throw new TypeError(`invalid connection string near "${s.slice(keyStart, keyStart + 20)}": expected key=value pairs, like "host=db1 port=5432 user=barmants"`);
    }
    i++;
    ws();
    let value = '';
    if (s[i] === "'") {
      i++;
      let closed = false;
      while (i < s.length) {
        const c = s[i]!;
        if (c === '\\' && i + 1 < s.length) {
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
      if (!closed) throw new TypeError(`invalid connection string: unterminated quoted value for "${key}"`);
    } else {
      while (i < s.length && !/\s/.test(s[i]!)) {
        if (s[i] === '\\' && i + 1 < s.length) {
          value += s[i + 1];
          i += 2;
        } else {
          value += s[i];
          i++;
        }
      }
    }
    out[key] = value;
  }
  return out;
}

function parseConninfoUrl(s: string): Conninfo {
  const url = new URL(s.replace(/^postgres(ql)?:/i, 'http:'));
  const out: Conninfo = {};
  if (url.hostname) out.host = decodeURIComponent(url.hostname.replace(/^\[|\]$/g, ''));
  if (url.port) out.port = url.port;
  if (url.username) out.user = decodeURIComponent(url.username);
  if (url.password) out.password = decodeURIComponent(url.password);
  const db = url.pathname.replace(/^\//, '');
  if (db) out.dbname = decodeURIComponent(db);
  for (const [k, v] of url.searchParams) out[k] = v;
  return out;
}

/** Renders keywords back to a key/value string, quoting where libpq needs it. */
export function formatConninfo(info: Conninfo): string {
  return Object.entries(info)
    .map(([k, v]) => (v === '' || /[\s'\\]/.test(v) ? `${k}='${v.replace(/(['\\])/g, '\\$1')}'` : `${k}=${v}`))
    .join(' ');
}

/** The same string with any password replaced, safe for logs and `show-servers`. */
export function maskConninfo(text: string): string {
  try {
    const info = parseConninfo(text);
    if (info.password !== undefined) info.password = '********';
    return formatConninfo(info);
  } catch {
    return text.replace(/(password\s*=\s*)('(?:\\.|[^'])*'|\S+)/gi, '$1********').replace(/(:\/\/[^:/@]*:)[^@]*@/, '$1********@');
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
