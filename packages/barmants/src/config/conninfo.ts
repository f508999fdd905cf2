// libpq connection strings, in both forms libpq accepts: `key=value` pairs (with single-quote
// quoting and backslash escapes) and `postgres://` / `postgresql://` URLs. Parsed here so a typo
// fails at config load with file:line rather than at 3 a.m. in the first backup.

const SECRET = '********';

export class ConninfoSyntaxError extends Error {}

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
export function parseConninfo(s: string): Record<string, string> {
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
