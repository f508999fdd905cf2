// Every configuration option barmants knows, declared once as data (name, scope, type, default,
// Barman alias, allowed values, help), with the value parsers for each type. The loader,
// `show-servers` and the README option table are all generated from OPTIONS, so they agree.

import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { homedir } from 'node:os';
import { isAbsolute, normalize } from 'node:path';
import { ConninfoSyntaxError, parseConninfo } from './conninfo.js';

export type OptionScope = 'global' | 'server' | 'both';
export type OptionType =
  | 'string'
  | 'bool'
  | 'int'
  | 'size'
  | 'duration'
  | 'enum'
  | 'list'
  | 'compression'
  | 'compressionLevel'
  | 'retention'
  | 'cron'
  | 'conninfo'
  | 'path'
  | 'command'
  | 'listen';

export interface OptionSpec {
  readonly name: string;
  readonly scope: OptionScope;
  readonly type: OptionType;
  /** As it would be written in a config file (interpolation allowed); null = unset. */
  readonly default: string | null;
  /** What the docs print when the default is computed rather than literal. */
  readonly defaultText?: string;
  /** Barman's name for this option, when it differs. */
  readonly barmanAlias?: string;
  readonly allowed?: readonly string[];
  /** Values Barman accepts that barmants refuses, with the reason the error gives. */
  readonly refused?: Readonly<Record<string, string>>;
  readonly min?: number;
  readonly max?: number;
  /** For 'string': the shape the value must have. */
  readonly pattern?: RegExp;
  /** For 'duration': the unit of the stored number and of a bare number. */
  readonly unit?: 's' | 'ms';
  readonly help: string;
  /** Known Barman option barmants accepts and does not use. */
  readonly ignored?: true;
  readonly reason?: string;
}

/** A value a parser rejected; `expected` completes "invalid value 'x' for option 'y': ...". */
export class OptionValueError extends Error {
  constructor(readonly expected: string) {
    super(expected);
  }
}

export type CompressionCodec = 'none' | 'gzip' | 'lz4' | 'zstd';
export interface Compression {
  codec: CompressionCodec;
  level?: number;
}

export type RetentionPolicy =
  | { kind: 'redundancy'; count: number }
  | { kind: 'window'; amount: number; unit: 'days' | 'weeks' | 'months'; seconds: number };

export const LOG_LEVELS = ['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'] as const;
export const LOG_FORMATS = ['text', 'json'] as const;
export const COMPRESSION_CODECS: readonly CompressionCodec[] = ['none', 'gzip', 'lz4', 'zstd'];
/** Accepted levels per codec (pg_basebackup's ranges, positive part for zstd). */
export const COMPRESSION_LEVELS: Record<Exclude<CompressionCodec, 'none'>, { min: number; max: number; low: number; medium: number; high: number }> = {
  gzip: { min: 1, max: 9, low: 1, medium: 6, high: 9 },
  lz4: { min: 1, max: 12, low: 1, medium: 6, high: 12 },
  zstd: { min: 1, max: 22, low: 1, medium: 3, high: 19 },
};

export const HOOK_OPERATIONS = ['backup', 'recovery', 'delete', 'wal_delete', 'archive'] as const;
export const HOOK_OPTIONS: readonly string[] = HOOK_OPERATIONS.flatMap((op) => [
  `pre_${op}_script`,
  `pre_${op}_retry_script`,
  `post_${op}_retry_script`,
  `post_${op}_script`,
]);

const DAY = 86_400;

const hookSpecs: OptionSpec[] = HOOK_OPTIONS.map((name) => ({
  name,
  scope: 'both',
  type: 'command',
  default: null,
  help: name.includes('_retry_')
    ? `Hook run ${name.startsWith('pre') ? 'before' : 'after'} ${name.split('_').slice(1, -2).join(' ')}, retried until it exits 0, 62 (continue) or 63 (abort).`
    : `Hook run ${name.startsWith('pre') ? 'before' : 'after'} ${name.split('_').slice(1, -1).join(' ')}; its exit status is logged, never fatal.`,
}));

function ignored(name: string, reason: string, scope: OptionScope = 'both'): OptionSpec {
  return { name, scope, type: 'string', default: null, help: `Barman option, accepted and ignored: ${reason}.`, ignored: true, reason };
}

const UNSUPPORTED_METHOD = 'barmants only supports backup_method = postgres (streaming base backups)';
const RSYNC = 'barmants takes streaming backups only (no rsync/ssh)';
const LAYOUT = 'the repository layout under backup_directory is fixed';
const BINARIES = 'barmants speaks the replication protocol itself and runs no PostgreSQL client binaries';

export const OPTIONS: readonly OptionSpec[] = [
  // --- global ---
  { name: 'barmants_home', barmanAlias: 'barman_home', scope: 'global', type: 'path', default: '/var/lib/barmants', help: 'Main directory: holds one backup_directory per server by default.' },
  { name: 'log_file', scope: 'global', type: 'path', default: null, defaultText: '(stderr only)', help: 'Log file; when unset barmants logs to stderr only.' },
  { name: 'log_level', scope: 'global', type: 'enum', allowed: LOG_LEVELS, default: 'INFO', help: 'Log verbosity (case-insensitive).' },
  { name: 'log_format', scope: 'global', type: 'enum', allowed: LOG_FORMATS, default: 'text', help: 'text: one Barman-style line per event; json: one JSON object per line (time, level, server, backup, component, message).' },
  { name: 'configuration_files_directory', scope: 'global', type: 'path', default: null, help: 'Directory whose *.conf files (read in name order) hold server sections.' },
  { name: 'lock_directory', barmanAlias: 'barman_lock_directory', scope: 'global', type: 'path', default: '%(barmants_home)s', defaultText: 'barmants_home', help: 'Directory for lock files; must be on a local filesystem.' },
  { name: 'maintenance_interval', scope: 'global', type: 'duration', unit: 's', min: 1, default: '60 seconds', help: 'How often the daemon runs maintenance (retention, checks, schedules).' },
  { name: 'metrics_listen', scope: 'global', type: 'listen', default: null, defaultText: '(off)', help: 'Where the daemon serves Prometheus metrics (GET /metrics) and GET /healthz: [address:]port, address 127.0.0.1 when omitted. Any other address exposes them, unauthenticated, to whoever can reach it.' },

  // --- servers (most may also be set in the global section as defaults) ---
  { name: 'description', scope: 'server', type: 'string', default: null, help: 'Free text shown by list-servers.' },
  { name: 'active', scope: 'server', type: 'bool', default: 'true', help: 'When false the server is kept for diagnostics only: no backups, no WAL streaming.' },
  { name: 'conninfo', scope: 'server', type: 'conninfo', default: null, help: 'libpq connection string (key=value or postgres:// URL) for SQL; required for an active server. Keep passwords in passfile.' },
  { name: 'streaming_conninfo', scope: 'server', type: 'conninfo', default: null, defaultText: 'conninfo', help: 'Connection string for replication connections; replication=true is added by barmants.' },
  { name: 'backup_method', scope: 'both', type: 'enum', allowed: ['postgres'], refused: { rsync: UNSUPPORTED_METHOD, 'local-rsync': UNSUPPORTED_METHOD, snapshot: UNSUPPORTED_METHOD }, default: 'postgres', help: 'Only postgres (streaming base backup) is supported.' },
  { name: 'backup_directory', scope: 'server', type: 'path', default: '%(barmants_home)s/%(name)s', defaultText: 'barmants_home/<server>', help: "The server's repository: base backups, WAL, catalog." },
  { name: 'backup_compression', scope: 'both', type: 'compression', default: 'none', help: 'Compression of base backup files: none, gzip, lz4 or zstd, optionally with :level.' },
  { name: 'backup_compression_level', scope: 'both', type: 'compressionLevel', default: null, help: 'Level for backup_compression: an integer, or low, medium, high.' },
  { name: 'compression', scope: 'both', type: 'compression', default: 'none', help: 'Compression of archived WAL segments: none, gzip, lz4 or zstd, optionally with :level.' },
  { name: 'compression_level', scope: 'both', type: 'compressionLevel', default: null, help: 'Level for compression: an integer, or low, medium, high.' },
  { name: 'immediate_checkpoint', scope: 'both', type: 'bool', default: 'false', help: 'Ask for a fast checkpoint at backup start instead of a spread one.' },
  { name: 'bandwidth_limit', scope: 'both', type: 'int', min: 0, default: '0', help: 'Maximum base backup transfer rate in kB/s (0 = unlimited).' },
  { name: 'minimum_redundancy', scope: 'both', type: 'int', min: 0, default: '0', help: 'Number of DONE backups retention never deletes.' },
  { name: 'backup_sync_method', scope: 'both', type: 'enum', allowed: ['auto', 'fsync', 'syncfs'], default: 'auto', help: 'How a finished backup is made durable before the catalog calls it complete, and a restored directory before `recover` removes its incomplete marker: fsync every file and directory, or one syncfs(2) of the file system (through `sync -f`; reports write-back errors on Linux 5.8 and later, but also flushes other data on that file system). auto: syncfs on Linux 5.8+, else fsync.' },
  { name: 'reuse_backup', scope: 'both', type: 'enum', allowed: ['off', 'link'], default: 'off', help: 'link: hard-link files unchanged since the previous backup, once its copy is checked byte for byte (Barman\'s copy is treated as off).' },
  { name: 'streaming_archiver', scope: 'both', type: 'bool', default: 'false', help: 'Stream WAL continuously (receive-wal) into the repository.' },
  { name: 'archiver', scope: 'both', type: 'bool', default: 'false', help: 'archive_command shipping: accepted for compatibility, but only streaming is supported.' },
  { name: 'slot_name', scope: 'server', type: 'string', pattern: /^[0-9a-z_]+$/, default: null, help: 'Physical replication slot used by receive-wal ([0-9a-z_]).' },
  { name: 'create_slot', scope: 'both', type: 'enum', allowed: ['manual', 'auto'], default: 'manual', help: 'auto: receive-wal creates slot_name when it is missing.' },
  { name: 'streaming_archiver_name', scope: 'both', type: 'string', default: 'barmants_receive_wal', help: 'application_name of the WAL streaming connection.' },
  { name: 'streaming_backup_name', scope: 'both', type: 'string', default: 'barmants_streaming_backup', help: 'application_name of the base backup connection.' },
  { name: 'wal_flush_interval', scope: 'both', type: 'duration', unit: 'ms', min: 1, default: '200 ms', help: 'How often streamed WAL is fsynced and acknowledged.' },
  {
    name: 'wal_receiver_timeout', scope: 'both', type: 'duration', unit: 'ms', min: 0, default: '60 seconds',
    help: "Like PostgreSQL's wal_receiver_timeout: the WAL receiver asks a silent server for a keepalive after half of it, and after all of it without a message presumes the connection dead (half-open: packets dropped, no reset) and reconnects. Also bounds each replication command (IDENTIFY_SYSTEM, SHOW, slot commands) of receive-wal and backup, and the silence of a base backup's copy. 0 disables.",
  },
  { name: 'retention_policy', scope: 'both', type: 'retention', default: null, help: 'REDUNDANCY n, or RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS.' },
  { name: 'wal_retention_policy', scope: 'both', type: 'enum', allowed: ['main'], default: 'main', help: 'Only main: WAL follows the base backups kept.' },
  { name: 'last_backup_maximum_age', scope: 'both', type: 'duration', unit: 's', min: 1, default: null, help: 'check fails when the newest backup is older (e.g. 1 day, 2 weeks).' },
  { name: 'last_backup_minimum_size', scope: 'both', type: 'size', default: null, help: 'check fails when the newest backup is smaller (n {k|Ki|M|Mi|G|Gi|T|Ti}).' },
  { name: 'last_wal_maximum_age', scope: 'both', type: 'duration', unit: 's', min: 1, default: null, help: 'check fails when the newest archived WAL is older.' },
  { name: 'check_timeout', scope: 'both', type: 'duration', unit: 's', min: 1, default: '30 seconds', help: 'Time limit for a whole check of one server.' },
  { name: 'backup_schedule', scope: 'both', type: 'cron', default: null, help: 'Cron expression: when the daemon takes a backup.' },
  { name: 'backup_schedule_catchup', scope: 'both', type: 'int', min: 0, default: '1', help: 'Missed scheduled backups the daemon makes up for after downtime (0 = none).' },
  { name: 'failed_backup_retention', scope: 'both', type: 'duration', unit: 's', min: 0, default: '7 days', help: 'How long FAILED backups are kept for inspection before maintenance deletes them.' },
  { name: 'min_free_space', scope: 'both', type: 'size', default: null, help: 'check fails, and backups refuse to start, below this free space in backup_directory.' },
  { name: 'slot_retained_wal_warning', scope: 'both', type: 'size', default: null, help: 'check warns when the slot holds back more WAL than this on the server.' },
  { name: 'slot_retained_wal_critical', scope: 'both', type: 'size', default: null, help: 'check fails when the slot holds back more WAL than this on the server.' },
  { name: 'passfile', scope: 'both', type: 'path', default: null, help: 'libpq password file (.pgpass format) used for both connections.' },
  { name: 'ssh_key', scope: 'both', type: 'path', default: null, help: 'Private key for restores to a remote host (--remote-ssh-command).' },
  { name: 'recovery_options', scope: 'both', type: 'list', allowed: ['get-wal', 'delta-restore'], default: '', help: 'Comma-separated restore defaults: get-wal, delta-restore.' },
  ...hookSpecs,
  { name: 'shutdown_grace_period', scope: 'both', type: 'duration', unit: 's', min: 0, default: '60 seconds', help: 'On SIGTERM, how long running backups may finish before they are stopped.' },
  { name: 'basebackup_retry_times', scope: 'both', type: 'int', min: 0, default: '0', help: 'Retries of a failed base backup copy.' },
  { name: 'basebackup_retry_sleep', scope: 'both', type: 'duration', unit: 's', min: 0, default: '30 seconds', help: 'Pause between base backup retries.' },

  // --- known Barman options that barmants accepts and ignores ---
  ignored('barman_user', 'barmants runs as the invoking user and drops no privileges', 'global'),
  ignored('network_compression', RSYNC),
  ignored('parallel_jobs', RSYNC),
  ignored('ssh_command', RSYNC),
  ignored('tablespace_bandwidth_limit', RSYNC),
  ignored('backup_options', 'streaming backups are always concurrent'),
  ignored('path_prefix', BINARIES),
  ignored('archiver_batch_size', 'only streaming WAL archiving is supported'),
  ignored('streaming_archiver_batch_size', 'streamed WAL is archived as it arrives'),
  ignored('max_incoming_wals_queue', 'streamed WAL is archived as it arrives'),
  ignored('basebackups_directory', LAYOUT),
  ignored('wals_directory', LAYOUT),
  ignored('incoming_wals_directory', LAYOUT),
  ignored('streaming_wals_directory', LAYOUT),
  ignored('errors_directory', LAYOUT),
  ignored('backup_compression_format', 'barmants stores its own backup format'),
  ignored('backup_compression_location', 'barmants compresses on its side'),
  ignored('backup_compression_workers', 'barmants compresses on its side'),
  ignored('custom_compression_filter', 'only none, gzip, lz4 and zstd are supported'),
  ignored('custom_decompression_filter', 'only none, gzip, lz4 and zstd are supported'),
  ignored('custom_compression_magic', 'only none, gzip, lz4 and zstd are supported'),
  ignored('staging_path', 'restores decompress while copying'),
  ignored('staging_location', 'restores decompress while copying'),
  ignored('recovery_staging_path', 'restores decompress while copying'),
  ignored('local_staging_path', 'incremental backups are not supported'),
  ignored('retention_policy_mode', 'retention is always applied automatically'),
  ignored('wal_conninfo', 'WAL is streamed through streaming_conninfo'),
  ignored('wal_streaming_conninfo', 'WAL is streamed through streaming_conninfo'),
  ignored('primary_conninfo', 'standby backups are not supported'),
  ignored('primary_ssh_command', 'standby backups are not supported'),
  ignored('primary_checkpoint_timeout', 'standby backups are not supported'),
  ignored('keepalive_interval', 'keepalives follow wal_flush_interval'),
  ignored('autogenerate_manifest', 'barmants always records checksums in its catalog'),
  ignored('cluster', 'models and config-switch are not supported'),
  ignored('model', 'models and config-switch are not supported'),
  ignored('forward_config_path', RSYNC),
  ignored('snapshot_disks', 'snapshot backups are not supported'),
  ignored('snapshot_instance', 'snapshot backups are not supported'),
  ignored('snapshot_provider', 'snapshot backups are not supported'),
  ignored('snapshot_zone', 'snapshot backups are not supported'),
  ignored('snapshot_gcp_project', 'snapshot backups are not supported'),
  ignored('worm_mode', 'immutable storage is not supported'),
];

const BY_NAME = new Map<string, OptionSpec>();
for (const spec of OPTIONS) {
  BY_NAME.set(spec.name, spec);
  if (spec.barmanAlias) BY_NAME.set(spec.barmanAlias, spec);
}

/** The spec for a key as written (canonical name or Barman alias), case-insensitive. */
export function findOption(key: string): OptionSpec | undefined {
  return BY_NAME.get(key.toLowerCase());
}

// ---------------------------------------------------------------------------------------------
// Value parsers: each returns the typed value or throws OptionValueError saying what is allowed.

const TRUE = ['true', 't', 'yes', '1', 'on'];
const FALSE = ['false', 'f', 'no', '0', 'off'];

export function parseBool(raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (TRUE.includes(v)) return true;
  if (FALSE.includes(v)) return false;
  throw new OptionValueError('expected a boolean: true|t|yes|1|on or false|f|no|0|off');
}

export function parseInt10(raw: string, min?: number, max?: number): number {
  const range = min !== undefined && max !== undefined ? ` between ${min} and ${max}` : min !== undefined ? ` >= ${min}` : max !== undefined ? ` <= ${max}` : '';
  if (!/^\s*[-+]?\d+\s*$/.test(raw)) throw new OptionValueError(`expected an integer${range}`);
  const n = Number.parseInt(raw.trim(), 10);
  if (!Number.isSafeInteger(n) || (min !== undefined && n < min) || (max !== undefined && n > max)) {
    throw new OptionValueError(`expected an integer${range}`);
  }
  return n;
}

const SIZE_FACTORS: Record<string, number> = {
  '': 1,
  k: 1e3,
  Ki: 1024,
  M: 1e6,
  Mi: 1024 ** 2,
  G: 1e9,
  Gi: 1024 ** 3,
  T: 1e12,
  Ti: 1024 ** 4,
};

/** Barman's size grammar: `n {k|Ki|M|Mi|G|Gi|T|Ti}`, suffix case-sensitive, bare number = bytes. */
export function parseSize(raw: string): number {
  const m = /^\s*(\d+)\s*(k|Ki|M|Mi|G|Gi|T|Ti)?\s*$/.exec(raw);
  if (!m) throw new OptionValueError('expected a size: n [k|Ki|M|Mi|G|Gi|T|Ti] (case-sensitive; k = 1000, Ki = 1024)');
  return Number(m[1]) * SIZE_FACTORS[m[2] ?? '']!;
}

const DURATION_MS: Array<[RegExp, number]> = [
  [/^(ms|msecs?|milliseconds?)$/, 1],
  [/^(s|secs?|seconds?)$/, 1000],
  [/^(m|mins?|minutes?)$/, 60_000],
  [/^(h|hours?)$/, 3_600_000],
  [/^(d|days?)$/, DAY * 1000],
  [/^(w|weeks?)$/, 7 * DAY * 1000],
  [/^(months?)$/, 31 * DAY * 1000], // Barman's month: 31 days
];

/**
 * Durations: `n unit` with unit second|minute|hour|day|week|month (plural optional, short forms
 * s/min/h/d/w; ms where the option stores milliseconds). Superset of Barman's
 * `^\s*(\d+)\s+(day|month|week|hour)s?\s*$`. A bare number is in the option's unit.
 */
export function parseDuration(raw: string, unit: 's' | 'ms' = 's', min?: number): number {
  const units = unit === 'ms' ? 'ms|second|minute|hour|day|week|month' : 'second|minute|hour|day|week|month';
  const expected = `expected a duration: n {${units}}[s]${unit === 's' ? ', or a number of seconds' : ', or a number of milliseconds'}${min !== undefined && min > 0 ? ` (at least ${min})` : ''}`;
  const m = /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(raw);
  if (!m) throw new OptionValueError(expected);
  const amount = Number(m[1]);
  let ms: number;
  if (m[2] === '') {
    ms = unit === 'ms' ? amount : amount * 1000;
  } else {
    const word = m[2]!.toLowerCase();
    const factor = DURATION_MS.find(([re]) => re.test(word))?.[1];
    if (factor === undefined || (unit === 's' && factor === 1)) throw new OptionValueError(expected);
    ms = amount * factor;
  }
  const value = unit === 'ms' ? ms : ms / 1000;
  if (!Number.isSafeInteger(value) || (min !== undefined && value < min)) throw new OptionValueError(expected);
  return value;
}

/** `none|gzip|lz4|zstd`, optionally `:N` or `:level=N` (pg_basebackup's spelling). */
export function parseCompression(raw: string): Compression {
  const expected = `expected one of ${COMPRESSION_CODECS.join(', ')} (optionally ':level', e.g. zstd:3)`;
  const m = /^\s*([a-z0-9]+)\s*(?::\s*(?:level\s*=\s*)?(\S+)\s*)?$/i.exec(raw);
  if (!m) throw new OptionValueError(expected);
  let codec = m[1]!.toLowerCase();
  // pigz and Python's gzip write the same gzip format: accept Barman configs that use them.
  if (codec === 'pigz' || codec === 'pygzip') codec = 'gzip';
  if (!(COMPRESSION_CODECS as readonly string[]).includes(codec)) throw new OptionValueError(expected);
  const result: Compression = { codec: codec as CompressionCodec };
  if (m[2] !== undefined) result.level = compressionLevelFor(result.codec, parseCompressionLevel(m[2]));
  return result;
}

/** An integer, or Barman's low|medium|high; resolved against the codec by compressionLevelFor. */
export function parseCompressionLevel(raw: string): number | 'low' | 'medium' | 'high' {
  const v = raw.trim().toLowerCase();
  if (v === 'low' || v === 'medium' || v === 'high') return v;
  if (/^\d+$/.test(v)) return Number(v);
  throw new OptionValueError('expected a compression level: an integer, or low, medium, high');
}

export function compressionLevelFor(codec: CompressionCodec, level: number | 'low' | 'medium' | 'high'): number {
  if (codec === 'none') throw new OptionValueError('a level needs a compression codec (gzip, lz4 or zstd), not none');
  const range = COMPRESSION_LEVELS[codec];
  if (typeof level === 'string') return range[level];
  if (level < range.min || level > range.max) {
    throw new OptionValueError(`expected a ${codec} level between ${range.min} and ${range.max}, or low, medium, high`);
  }
  return level;
}

/** Barman's retention grammar (case-insensitive). Month = 31 days, as in Barman. */
export function parseRetention(raw: string): RetentionPolicy {
  const expected = 'expected REDUNDANCY n or RECOVERY WINDOW OF n {DAYS|WEEKS|MONTHS} (n >= 1)';
  const r = /^\s*redundancy\s+(\d+)\s*$/i.exec(raw);
  if (r) {
    const count = Number(r[1]);
    if (count < 1) throw new OptionValueError(expected);
    return { kind: 'redundancy', count };
  }
  const w = /^\s*recovery\s+window\s+of\s+(\d+)\s+(day|month|week)s?\s*$/i.exec(raw);
  if (w) {
    const amount = Number(w[1]);
    if (amount < 1) throw new OptionValueError(expected);
    const unit = `${w[2]!.toLowerCase()}s` as 'days' | 'weeks' | 'months';
    const perUnit = unit === 'days' ? DAY : unit === 'weeks' ? 7 * DAY : 31 * DAY;
    return { kind: 'window', amount, unit, seconds: amount * perUnit };
  }
  throw new OptionValueError(expected);
}

export function formatRetention(policy: RetentionPolicy): string {
  return policy.kind === 'redundancy'
    ? `REDUNDANCY ${policy.count}`
    : `RECOVERY WINDOW OF ${policy.amount} ${policy.unit.toUpperCase()}`;
}

const nodeRequire = createRequire(import.meta.url);
let cronValidate: ((expr: string) => boolean) | undefined;

/** A cron expression as node-cron (the daemon's scheduler) accepts it: 5 fields, or 6 with seconds. */
export function parseCron(raw: string): string {
  cronValidate ??= (nodeRequire('node-cron') as { validate(expr: string): boolean }).validate;
  const expr = raw.trim().replace(/\s+/g, ' ');
  if (expr === '' || !cronValidate(expr)) {
    throw new OptionValueError("expected a cron expression: 'minute hour day-of-month month day-of-week', e.g. '0 2 * * *'");
  }
  return expr;
}

export function parseEnum(raw: string, allowed: readonly string[]): string {
  const v = raw.trim().toLowerCase();
  const hit = allowed.find((a) => a.toLowerCase() === v);
  if (hit === undefined) throw new OptionValueError(`expected one of ${allowed.join(', ')}`);
  return hit;
}

export function parseList(raw: string, allowed: readonly string[]): string[] {
  const items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const out: string[] = [];
  for (const item of items) {
    const hit = allowed.find((a) => a.toLowerCase() === item.toLowerCase());
    if (hit === undefined) throw new OptionValueError(`expected a comma-separated list of ${allowed.join(', ')}`);
    if (!out.includes(hit)) out.push(hit);
  }
  return out;
}

/** Absolute path, `~` expanded against HOME; trailing slashes dropped. */
export function parsePath(raw: string, env: NodeJS.ProcessEnv = process.env): string {
  let p = raw.trim();
  if (p === '~' || p.startsWith('~/')) p = (env['HOME'] ?? homedir()) + p.slice(1);
  if (p === '' || !isAbsolute(p)) throw new OptionValueError('expected an absolute path (or one starting with ~/)');
  const n = normalize(p);
  return n.length > 1 ? n.replace(/\/+$/, '') : n;
}

export function parseConninfoOption(raw: string): string {
  const s = raw.trim();
  if (s === '') throw new OptionValueError('expected a libpq connection string (key=value ... or postgres://...)');
  try {
    parseConninfo(s);
  } catch (err) {
    if (err instanceof ConninfoSyntaxError) throw new OptionValueError(`expected a libpq connection string: ${err.message}`);
    throw err;
  }
  return s;
}

/**
 * `metrics_listen`: `port`, `:port`, `address:port` or `[ipv6]:port` (port 0 = any free port).
 * The address defaults to 127.0.0.1; `localhost` means 127.0.0.1. Host names are refused: what a
 * name resolves to can change, and binding beyond loopback must be a literal, deliberate choice.
 * Returns `address:port` (IPv6 in brackets).
 */
export function parseListen(raw: string): string {
  const expected = "expected [address:]port, e.g. 127.0.0.1:9630 or 9630 (address: an IPv4 or [IPv6] literal, or localhost; port 0-65535)";
  const v = raw.trim();
  const m = /^(?:(\[[0-9A-Fa-f:.]+\]|[0-9.]+|localhost|)?:)?(\d{1,5})$/.exec(v);
  if (!m) throw new OptionValueError(expected);
  const port = Number(m[2]);
  if (port > 65535) throw new OptionValueError(expected);
  let host = m[1] ?? '';
  if (host === '' || host.toLowerCase() === 'localhost') host = '127.0.0.1';
  if (host.startsWith('[')) {
    if (isIP(host.slice(1, -1)) !== 6) throw new OptionValueError(expected);
  } else if (isIP(host) !== 4) {
    throw new OptionValueError(expected);
  }
  return `${host}:${port}`;
}

export type OptionValue = string | number | boolean | string[] | Compression | RetentionPolicy | null;

/** Parses a raw (already interpolated) value according to its spec. */
export function parseOptionValue(spec: OptionSpec, raw: string, env: NodeJS.ProcessEnv = process.env): OptionValue {
  switch (spec.type) {
    case 'string': {
      const v = raw.trim();
      if (spec.pattern && !spec.pattern.test(v)) throw new OptionValueError(`expected a value matching ${spec.pattern.source}`);
      return v;
    }
    case 'command': {
      const v = raw.trim();
      if (v === '') throw new OptionValueError('expected a command line');
      return v;
    }
    case 'bool':
      return parseBool(raw);
    case 'int':
      return parseInt10(raw, spec.min, spec.max);
    case 'size':
      return parseSize(raw);
    case 'duration':
      return parseDuration(raw, spec.unit ?? 's', spec.min);
    case 'enum': {
      const reason = spec.refused?.[raw.trim().toLowerCase()];
      if (reason !== undefined) throw new OptionValueError(reason);
      return parseEnum(raw, spec.allowed ?? []);
    }
    case 'list':
      return parseList(raw, spec.allowed ?? []);
    case 'compression':
      return parseCompression(raw);
    case 'compressionLevel':
      return parseCompressionLevel(raw);
    case 'retention':
      return parseRetention(raw);
    case 'cron':
      return parseCron(raw);
    case 'conninfo':
      return parseConninfoOption(raw);
    case 'path':
      return parsePath(raw, env);
    case 'listen':
      return parseListen(raw);
  }
}
