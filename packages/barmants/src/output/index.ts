/*
 * One result model, several writers (console, JSON): every command returns a CommandResult and
 * the CLI renders it in the format asked with -f. Console text is built by the command (it knows
 * its table); JSON is the data itself, with bigint LSNs as "X/Y" text.
 */
export type OutputFormat = 'console' | 'json';

export interface CommandResult {
  /** what `-f json` prints */
  readonly data: unknown;
  /** what the console shows; lines */
  readonly text: string[];
  /** process exit status; 0 by default */
  readonly exitCode?: number;
}

export function result(data: unknown, text: string[] | string, exitCode = 0): CommandResult {
  return { data, text: Array.isArray(text) ? text : [text], exitCode };
}

function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') {
    // LSNs are the only bigints we carry; print them as PostgreSQL does.
    return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
  }
  if (value instanceof Map) return Object.fromEntries(value);
  return value;
}

export function toJson(data: unknown): string {
  return JSON.stringify(data, jsonReplacer, 2);
}

export function render(r: CommandResult, format: OutputFormat): string {
  if (format === 'json') return toJson(r.data) + '\n';
  return r.text.length ? r.text.join('\n') + '\n' : '';
}

/** A plain text table: columns padded to their widest cell. */
export function table(headers: string[], rows: (string | number | null | undefined)[][]): string[] {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(headers), ...cells.map(line)];
}

/** "1.5 GiB" style sizes, as Barman prints them. */
export function humanSize(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** "2 hours, 3 minutes" */
export function humanDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} second${s === 1 ? '' : 's'}`;
  const parts: string[] = [];
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) parts.push(`${d} day${d === 1 ? '' : 's'}`);
  if (h) parts.push(`${h} hour${h === 1 ? '' : 's'}`);
  if (m && !d) parts.push(`${m} minute${m === 1 ? '' : 's'}`);
  return parts.join(', ');
}
