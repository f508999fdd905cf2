/*
 * The recovery configuration of a restored data directory (PostgreSQL 12+): recovery.signal or
 * standby.signal, and postgresql.auto.conf with restore_command, the target, and archiving turned
 * off, earlier conflicting lines kept but commented out; plus Barman's "dangerous settings" scan.
 * Pure text in, text out; the callers read and write the files (locally or into a remote stream).
 */
import { formatLsn } from 'pg-replication/wal';
import { BarmantsError } from '../errors/index.js';
import { formatTargetTimeForPostgres, type RecoveryTarget } from './target.js';

export type TargetAction = 'pause' | 'promote' | 'shutdown';

export const WAL_DIR_NAME = 'barmants_wal';
export const COMMENT_PREFIX = '#BARMANTS# ';

export interface RecoverySettingsInput {
  pgVersion: number;
  target: RecoveryTarget;
  /** number, 'latest', or null to leave PostgreSQL's default */
  targetTli: number | 'latest' | 'current' | null;
  action: TargetAction | null;
  standby: boolean;
  restoreCommand: string;
  recoveryEndCommand: string | null;
}

/** PostgreSQL major version from server_version_num (150018 → 15). */
export function pgMajor(version: number): number {
  return version >= 10000 ? Math.floor(version / 10000) : version;
}

/** A postgresql.conf string literal: single quotes, `'` doubled, `\` escaped (the GUC lexer reads escapes). */
export function quoteConfValue(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** A word for /bin/sh: left bare when it only has safe characters, else single-quoted. */
export function shellQuote(s: string): string {
  if (s !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** restore_command copying from the WAL directory written next to the data directory. */
export function cpRestoreCommand(walDir: string): string {
  return `cp ${shellQuote(`${walDir}/%f`)} %p`;
}

/** restore_command calling `barmants get-wal` on this host. */
export function getWalRestoreCommand(o: { barmants: string; configFile: string | null; server: string; partial: boolean }): string {
  const words = [shellQuote(o.barmants)];
  if (o.configFile) words.push('-c', shellQuote(o.configFile));
  words.push('-q', 'get-wal');
  if (o.partial) words.push('-P');
  words.push(shellQuote(o.server), '%f', '>', '%p');
  return words.join(' ');
}

/** restore_command for a remote target: the barmants-wal-restore script calls back over ssh. */
export function walRestoreScriptCommand(o: { script: string; user: string | null; host: string; server: string; configFile: string | null; partial: boolean }): string {
  const words = [shellQuote(o.script)];
  if (o.user) words.push('-U', shellQuote(o.user));
  if (o.configFile) words.push('-c', shellQuote(o.configFile));
  if (o.partial) words.push('-P');
  words.push(shellQuote(o.host), shellQuote(o.server), '%f', '%p');
  return words.join(' ');
}

/** The settings appended to postgresql.auto.conf, in order. */
export function recoverySettings(i: RecoverySettingsInput): [string, string][] {
  const major = pgMajor(i.pgVersion);
  if (major < 12) {
    throw new BarmantsError('usage', `PostgreSQL ${major} uses recovery.conf, which barmants does not write: only 12 and later are supported`);
  }
  const out: [string, string][] = [['restore_command', i.restoreCommand]];
  if (i.recoveryEndCommand) out.push(['recovery_end_command', i.recoveryEndCommand]);
  const t = i.target;
  switch (t.kind) {
    case 'time':
      out.push(['recovery_target_time', formatTargetTimeForPostgres(t.time, t.micros ?? 0)]);
      break;
    case 'xid':
      out.push(['recovery_target_xid', t.xid]);
      break;
    case 'lsn':
      out.push(['recovery_target_lsn', formatLsn(t.lsn)]);
      break;
    case 'name':
      out.push(['recovery_target_name', t.name]);
      break;
    case 'immediate':
      out.push(['recovery_target', 'immediate']);
      break;
    case 'end':
      break;
  }
  if ((t.kind === 'time' || t.kind === 'xid' || t.kind === 'lsn') && !t.inclusive) out.push(['recovery_target_inclusive', 'false']);
  if (i.targetTli !== null) out.push(['recovery_target_timeline', String(i.targetTli)]);
  if (i.action !== null) {
    if (t.kind === 'end') {
      throw new BarmantsError('usage', '--target-action needs a recovery target (--target-time, -xid, -lsn, -name or -immediate)', {
        hint: 'without a target, recovery replays all the WAL and the server is promoted at the end',
      });
    }
    out.push(['recovery_target_action', i.action]);
  }
  // A restored server must never push WAL into the archive of the cluster it was copied from.
  out.push(['archive_command', 'false']);
  if (major >= 15) out.push(['archive_library', '']); // an archive_library would make archive_command moot
  return out;
}

/** Settings whose earlier values in the restored files must not survive (commented out). */
const REPLACED = /^(restore_command|recovery_end_command|archive_cleanup_command|recovery_target(_[a-z]+)?|archive_command|archive_library|standby_mode|trigger_file|promote_trigger_file)$/;

/** Settings reported to the operator for review, as Barman does. */
export const DANGEROUS_SETTINGS = [
  'data_directory', 'config_file', 'hba_file', 'ident_file', 'external_pid_file', 'ssl_cert_file', 'ssl_key_file',
  'ssl_ca_file', 'ssl_crl_file', 'unix_socket_directory', 'unix_socket_directories', 'include', 'include_dir',
  'include_if_exists', 'archive_command',
] as const;

export interface ConfLine {
  file: string;
  line: number;
  name: string;
  text: string;
}

interface ParsedLine {
  name: string;
  value: string;
}

function parseConfLine(line: string): ParsedLine | null {
  const m = /^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:=\s*|\s+)(.*?)\s*$/.exec(line);
  if (m === null) return null;
  let value = m[2]!;
  if (value.startsWith("'")) {
    let i = 1;
    let v = '';
    while (i < value.length) {
      const c = value[i]!;
      if (c === '\\' && i + 1 < value.length) { v += value[i + 1]; i += 2; continue; }
      if (c === "'" && value[i + 1] === "'") { v += "'"; i += 2; continue; }
      if (c === "'") break;
      v += c;
      i++;
    }
    value = v;
  } else {
    value = value.replace(/\s*#.*$/, '');
  }
  return { name: m[1]!.toLowerCase(), value };
}

export interface RewrittenConf {
  text: string;
  /** lines commented out (1-based, as in the original file) */
  commented: ConfLine[];
}

/** Comments out every line setting one of the replaced settings; other lines are kept as they are. */
export function commentOutReplaced(file: string, text: string): RewrittenConf {
  const commented: ConfLine[] = [];
  const lines = text.split('\n').map((line, i) => {
    if (/^\s*#/.test(line)) return line;
    const p = parseConfLine(line);
    if (p === null || !REPLACED.test(p.name)) return line;
    commented.push({ file, line: i + 1, name: p.name, text: line.trim() });
    return COMMENT_PREFIX + line;
  });
  return { text: lines.join('\n'), commented };
}

/** Lines the operator must review before starting the restored server. */
export function scanDangerous(file: string, text: string): ConfLine[] {
  const out: ConfLine[] = [];
  text.split('\n').forEach((line, i) => {
    if (/^\s*#/.test(line)) return;
    const p = parseConfLine(line);
    if (p !== null && (DANGEROUS_SETTINGS as readonly string[]).includes(p.name)) out.push({ file, line: i + 1, name: p.name, text: line.trim() });
  });
  return out;
}

export interface RecoveryFilesInput extends RecoverySettingsInput {
  /** current contents, null when the file is absent from the restored directory */
  postgresqlConf: string | null;
  postgresqlAutoConf: string | null;
  /** e.g. `barmants recover pg 20261127T101500 at 2026-11-27T12:00:00Z` */
  banner: string;
}

export interface RecoveryFiles {
  /** file name in DEST → new content (null: leave the file alone) */
  postgresqlConf: string | null;
  postgresqlAutoConf: string;
  signalFile: 'recovery.signal' | 'standby.signal';
  settings: [string, string][];
  /** lines barmants commented out, to report as Barman's "IMPORTANT" list */
  modified: ConfLine[];
  /** lines to review, as Barman's "potentially dangerous" list (before our changes) */
  dangerous: ConfLine[];
}

/** Everything written into DEST's configuration for this recovery. */
export function buildRecoveryFiles(i: RecoveryFilesInput): RecoveryFiles {
  const settings = recoverySettings(i);
  const dangerous: ConfLine[] = [];
  const modified: ConfLine[] = [];
  let conf: string | null = null;
  if (i.postgresqlConf !== null) {
    dangerous.push(...scanDangerous('postgresql.conf', i.postgresqlConf));
    const r = commentOutReplaced('postgresql.conf', i.postgresqlConf);
    modified.push(...r.commented);
    conf = r.commented.length > 0 ? r.text : null;
  }
  let auto = i.postgresqlAutoConf ?? '# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n';
  if (i.postgresqlAutoConf !== null) {
    dangerous.push(...scanDangerous('postgresql.auto.conf', i.postgresqlAutoConf));
    const r = commentOutReplaced('postgresql.auto.conf', i.postgresqlAutoConf);
    modified.push(...r.commented);
    auto = r.text;
  }
  if (!auto.endsWith('\n')) auto += '\n';
  auto += `# ${i.banner}\n` + settings.map(([k, v]) => `${k} = ${quoteConfValue(v)}\n`).join('');
  return {
    postgresqlConf: conf,
    postgresqlAutoConf: auto,
    signalFile: i.standby ? 'standby.signal' : 'recovery.signal',
    settings,
    modified,
    dangerous: dangerous.filter((d) => d.name !== 'archive_command'),
    // archive_command is reported under "modified" once commented out; leaving it in "dangerous" would say it twice
  };
}
