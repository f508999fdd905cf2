// Loads barmants' configuration: finds the file, reads it and configuration_files_directory,
// resolves every option of OPTIONS for the global section and for each server (server value,
// else global default, else built-in default) and validates it with file:line in every error.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BarmantsError } from '../errors/index.js';
import { at, interpolate, parseIni, type IniEntry, type IniSection, type SourceRef } from './ini.js';
import {
  OPTIONS,
  OptionValueError,
  compressionLevelFor,
  findOption,
  parseOptionValue,
  type Compression,
  type OptionSpec,
  type OptionValue,
  type RetentionPolicy,
} from './options.js';

export type { SourceRef } from './ini.js';

export type LogLevelName = 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR' | 'CRITICAL';

export interface GlobalSettings {
  /** The global section's name as written: 'barmants', 'barman', or 'barmants' when absent. */
  section: string;
  barmantsHome: string;
  logFile: string | null;
  logLevel: LogLevelName;
  logFormat: 'text' | 'json';
  configurationFilesDirectory: string | null;
  lockDirectory: string;
  maintenanceIntervalSec: number;
  /** `address:port` for the daemon's /metrics and /healthz; null = off */
  metricsListen: string | null;
  source: Record<string, SourceRef>;
}

export interface ServerConfig {
  name: string;
  /** Where the [name] header is. */
  definedAt: SourceRef;
  description: string | null;
  active: boolean;
  conninfo: string | null;
  streamingConninfo: string | null;
  backupMethod: 'postgres';
  backupDirectory: string;
  backupCompression: Compression;
  walCompression: Compression;
  immediateCheckpoint: boolean;
  bandwidthLimitKbps: number;
  minimumRedundancy: number;
  reuseBackup: 'off' | 'link';
  backupSyncMethod: 'auto' | 'fsync' | 'syncfs';
  streamingArchiver: boolean;
  archiver: boolean;
  slotName: string | null;
  createSlot: 'manual' | 'auto';
  streamingArchiverName: string;
  streamingBackupName: string;
  walFlushIntervalMs: number;
  /** wal_receiver_timeout; 0 = none */
  walReceiverTimeoutMs: number;
  retentionPolicy: RetentionPolicy | null;
  walRetentionPolicy: 'main';
  lastBackupMaximumAgeSec: number | null;
  lastBackupMinimumSizeBytes: number | null;
  lastWalMaximumAgeSec: number | null;
  checkTimeoutSec: number;
  backupSchedule: string | null;
  backupScheduleCatchup: number;
  failedBackupRetentionSec: number;
  minFreeSpaceBytes: number | null;
  slotRetainedWalWarningBytes: number | null;
  slotRetainedWalCriticalBytes: number | null;
  passfile: string | null;
  sshKey: string | null;
  recoveryOptions: string[];
  /** Hook option name (e.g. 'pre_backup_script') → command, only the ones set. */
  hooks: Record<string, string>;
  shutdownGracePeriodSec: number;
  basebackupRetryTimes: number;
  basebackupRetrySleepSec: number;
  /** Canonical option name → where its value was set (server section or global default). */
  source: Record<string, SourceRef>;
}

export interface Config {
  files: string[];
  global: GlobalSettings;
  servers: Map<string, ServerConfig>;
  /** One line each, `file:line: ...`; never fatal. */
  warnings: string[];
  /** Known Barman options that were accepted and ignored, `file:line: ...`. */
  notes: string[];
}

export interface LoadConfigOptions {
  path?: string;
  env?: NodeJS.ProcessEnv;
}

export const GLOBAL_SECTIONS = ['barmants', 'barman'] as const;

export function defaultConfigPaths(env: NodeJS.ProcessEnv = process.env): string[] {
  return [join(env['HOME'] ?? homedir(), '.barmants.conf'), '/etc/barmants.conf', '/etc/barmants/barmants.conf'];
}

const SERVER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const RESERVED_NAMES = new Set(['all', 'barmants', 'barman']);

interface Resolved {
  value: OptionValue;
  /** Where it was set; undefined for built-in defaults. */
  entry?: IniEntry;
  section?: string;
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new BarmantsError('config', `cannot read configuration file ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** Canonical option name → entry, with Barman aliases folded in (both spellings → error). */
function canonicalEntries(section: IniSection, warnings: string[], notes: string[], kind: 'global' | 'server'): Map<string, IniEntry> {
  const out = new Map<string, IniEntry>();
  for (const entry of section.entries.values()) {
    const spec = findOption(entry.key);
    if (!spec) {
      warnings.push(`${at(entry)}: unknown option '${entry.key}' in section [${section.name}]: ignored`);
      continue;
    }
    if (spec.ignored) {
      notes.push(`${at(entry)}: option '${entry.key}' in section [${section.name}] is ignored: ${spec.reason}`);
      continue;
    }
    if (kind === 'global' && spec.scope === 'server') {
      warnings.push(`${at(entry)}: option '${entry.key}' is a server option and has no effect in the global section [${section.name}]: ignored`);
      continue;
    }
    if (kind === 'server' && spec.scope === 'global') {
      warnings.push(`${at(entry)}: option '${entry.key}' is a global option and belongs in [barmants]: ignored in section [${section.name}]`);
      continue;
    }
    const previous = out.get(spec.name);
    if (previous) {
      throw new BarmantsError(
        'config',
        `${at(entry)}: option '${entry.key}' in section [${section.name}] sets '${spec.name}' again (already set as '${previous.key}' at line ${previous.line})`,
      );
    }
    out.set(spec.name, entry);
  }
  return out;
}

function invalid(entry: IniEntry, section: string, raw: string, expected: string): BarmantsError {
  return new BarmantsError('config', `${at(entry)}: invalid value '${raw}' for option '${entry.key}' in section [${section}]: ${expected}`);
}

class Resolver {
  constructor(
    private readonly sectionName: string,
    private readonly own: Map<string, IniEntry>,
    private readonly rawOwn: Map<string, IniEntry>,
    private readonly globalName: string,
    private readonly global: Map<string, IniEntry>,
    private readonly rawGlobal: Map<string, IniEntry>,
    private readonly builtins: Record<string, string>,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  private lookup = (name: string): string | undefined => {
    const spec = findOption(name);
    const canonical = spec?.name ?? name;
    // The home is a built-in already expanded (~, interpolation), so it wins over raw entries.
    if (canonical === 'barmants_home' && this.builtins['barmants_home'] !== undefined) return this.builtins['barmants_home'];
    return (
      this.own.get(canonical)?.value ??
      this.rawOwn.get(name)?.value ??
      this.global.get(canonical)?.value ??
      this.rawGlobal.get(name)?.value ??
      this.builtins[name] ??
      (spec && spec.default !== null && spec.name !== 'backup_directory' ? spec.default : undefined)
    );
  };

  /** The option's value: this section, else (scope 'both') the global default, else the built-in default. */
  resolve(spec: OptionSpec, inherit: boolean): Resolved {
    const ownEntry = this.own.get(spec.name);
    const globalEntry = inherit ? this.global.get(spec.name) : undefined;
    const entry = ownEntry ?? globalEntry;
    const section = ownEntry ? this.sectionName : this.globalName;
    if (entry) {
      const expanded = interpolate(entry.value, { ...entry, section }, this.lookup);
      try {
        return { value: parseOptionValue(spec, expanded, this.env), entry, section };
      } catch (err) {
        if (err instanceof OptionValueError) throw invalid(entry, section, entry.value, err.expected);
        throw err;
      }
    }
    if (spec.default === null) return { value: null };
    const where = { file: '(built-in default)', line: 0, key: spec.name, section: this.sectionName };
    const expanded = interpolate(spec.default, where, this.lookup);
    try {
      return { value: parseOptionValue(spec, expanded, this.env) };
    } catch (err) {
      if (err instanceof OptionValueError) {
        throw new BarmantsError('config', `invalid default '${expanded}' for option '${spec.name}' in section [${this.sectionName}]: ${err.expected}`);
      }
      throw err;
    }
  }
}

function rawMap(section: IniSection | undefined): Map<string, IniEntry> {
  return section ? section.entries : new Map();
}

export function loadConfig(opts: LoadConfigOptions = {}): Config {
  const env = opts.env ?? process.env;
  let mainFile = opts.path ?? env['BARMANTS_CONFIG'];
  if (!mainFile) {
    const candidates = defaultConfigPaths(env);
    mainFile = candidates.find((p) => existsSync(p));
    if (!mainFile) {
      throw new BarmantsError('config', `no configuration file found (looked for ${candidates.join(', ')})`, {
        hint: 'create one of these files, or name one with -c FILE or BARMANTS_CONFIG',
      });
    }
  }
  const warnings: string[] = [];
  const notes: string[] = [];
  const files = [mainFile];
  const mainDoc = parseIni(readText(mainFile), mainFile);

  // --- global section ---
  const globals = mainDoc.sections.filter((s) => (GLOBAL_SECTIONS as readonly string[]).includes(s.name));
  if (globals.length > 1) {
    throw new BarmantsError(
      'config',
      `${at(globals[1]!)}: global section [${globals[1]!.name}] repeats [${globals[0]!.name}] from line ${globals[0]!.line}: keep one of them`,
    );
  }
  const globalSection = globals[0];
  const globalName = globalSection?.name ?? 'barmants';
  const globalEntries = globalSection ? canonicalEntries(globalSection, warnings, notes, 'global') : new Map<string, IniEntry>();
  const globalRaw = rawMap(globalSection);

  const homeSpec = findOption('barmants_home')!;
  const homeResolver = new Resolver(globalName, globalEntries, globalRaw, globalName, new Map(), new Map(), { name: globalName }, env);
  const barmantsHome = homeResolver.resolve(homeSpec, false).value as string;
  const builtinsFor = (name: string): Record<string, string> => ({ name, barmants_home: barmantsHome, barman_home: barmantsHome });

  const globalResolver = new Resolver(globalName, globalEntries, globalRaw, globalName, new Map(), new Map(), builtinsFor(globalName), env);
  const g = (name: string): Resolved => globalResolver.resolve(findOption(name)!, false);
  const globalSource: Record<string, SourceRef> = {};
  // Validate every global-scope and server-default value once, even with no server defined.
  for (const [name, entry] of globalEntries) {
    globalResolver.resolve(findOption(name)!, false);
    globalSource[name] = { file: entry.file, line: entry.line };
  }
  const global: GlobalSettings = {
    section: globalName,
    barmantsHome,
    logFile: g('log_file').value as string | null,
    logLevel: g('log_level').value as LogLevelName,
    logFormat: g('log_format').value as 'text' | 'json',
    configurationFilesDirectory: g('configuration_files_directory').value as string | null,
    lockDirectory: g('lock_directory').value as string,
    maintenanceIntervalSec: g('maintenance_interval').value as number,
    metricsListen: g('metrics_listen').value as string | null,
    source: globalSource,
  };

  // --- server sections: main file, then configuration_files_directory/*.conf in name order ---
  const serverSections: IniSection[] = mainDoc.sections.filter((s) => s !== globalSection);
  if (global.configurationFilesDirectory) {
    const dir = global.configurationFilesDirectory;
    const where = globalEntries.get('configuration_files_directory')!;
    let names: string[];
    try {
      if (!statSync(dir).isDirectory()) throw new Error('not a directory');
      names = readdirSync(dir).filter((n) => n.endsWith('.conf')).sort();
    } catch (err) {
      throw new BarmantsError('config', `${at(where)}: configuration_files_directory '${dir}' cannot be read: ${(err as Error).message}`, { cause: err });
    }
    for (const n of names) {
      const file = join(dir, n);
      files.push(file);
      for (const section of parseIni(readText(file), file).sections) {
        if ((GLOBAL_SECTIONS as readonly string[]).includes(section.name)) {
          throw new BarmantsError(
            'config',
            `${at(section)}: global section [${section.name}] is only allowed in the main configuration file ${mainFile}`,
          );
        }
        serverSections.push(section);
      }
    }
  }

  const servers = new Map<string, ServerConfig>();
  const seen = new Map<string, IniSection>();
  const directories = new Map<string, ServerConfig>();
  for (const section of serverSections) {
    const previous = seen.get(section.name);
    if (previous) {
      throw new BarmantsError('config', `${at(section)}: server [${section.name}] is already defined at ${at(previous)}`);
    }
    seen.set(section.name, section);
    const server = buildServer(section, globalName, globalEntries, globalRaw, builtinsFor(section.name), env, warnings, notes);
    const other = directories.get(server.backupDirectory);
    if (other) {
      throw new BarmantsError(
        'config',
        `${at(section)}: servers [${other.name}] and [${section.name}] share backup_directory ${server.backupDirectory}: each server needs its own`,
      );
    }
    directories.set(server.backupDirectory, server);
    servers.set(section.name, server);
  }
  return { files, global, servers, warnings, notes };
}

function buildServer(
  section: IniSection,
  globalName: string,
  globalEntries: Map<string, IniEntry>,
  globalRaw: Map<string, IniEntry>,
  builtins: Record<string, string>,
  env: NodeJS.ProcessEnv,
  warnings: string[],
  notes: string[],
): ServerConfig {
  const name = section.name;
  if (!SERVER_NAME.test(name) || RESERVED_NAMES.has(name.toLowerCase())) {
    throw new BarmantsError(
      'config',
      `${at(section)}: invalid server name [${name}]: expected letters, digits, '.', '_' or '-' (starting with a letter or digit), and not 'all', 'barmants' or 'barman'`,
    );
  }
  const own = canonicalEntries(section, warnings, notes, 'server');
  const reuseEntry = own.get('reuse_backup') ?? globalEntries.get('reuse_backup');
  let reuseCopy = false;
  if (reuseEntry && reuseEntry.value.trim().toLowerCase() === 'copy') {
    reuseCopy = true;
    warnings.push(`${at(reuseEntry)}: reuse_backup = copy is not supported for server [${name}]: treated as off`);
  }

  const resolver = new Resolver(name, own, section.entries, globalName, globalEntries, globalRaw, builtins, env);
  const source: Record<string, SourceRef> = {};
  const values = new Map<string, Resolved>();
  for (const spec of OPTIONS) {
    if (spec.ignored || spec.scope === 'global') continue;
    if (spec.name === 'reuse_backup' && reuseCopy) {
      values.set(spec.name, { value: 'off', entry: reuseEntry! });
      source[spec.name] = { file: reuseEntry!.file, line: reuseEntry!.line };
      continue;
    }
    const r = resolver.resolve(spec, spec.scope === 'both');
    values.set(spec.name, r);
    if (r.entry) source[spec.name] = { file: r.entry.file, line: r.entry.line };
  }
  const v = <T>(option: string): T => values.get(option)!.value as T;

  const compression = (codecOption: string, levelOption: string): Compression => {
    const base = { ...v<Compression>(codecOption) };
    const level = values.get(levelOption)!;
    if (level.value === null) return base;
    const levelEntry = level.entry!;
    if (base.level !== undefined) {
      const codecEntry = values.get(codecOption)!.entry!;
      throw new BarmantsError(
        'config',
        `${at(levelEntry)}: option '${levelOption}' in section [${level.section}] conflicts with the level already given in '${codecOption}' at ${at(codecEntry)}: set the level in one place`,
      );
    }
    if (base.codec === 'none') {
      warnings.push(`${at(levelEntry)}: option '${levelOption}' has no effect for server [${name}] because '${codecOption}' is none`);
      return base;
    }
    try {
      base.level = compressionLevelFor(base.codec, level.value as number | 'low' | 'medium' | 'high');
    } catch (err) {
      if (err instanceof OptionValueError) throw invalid(levelEntry, level.section!, levelEntry.value, err.expected);
      throw err;
    }
    return base;
  };

  const active = v<boolean>('active');
  const conninfo = v<string | null>('conninfo');
  if (active && conninfo === null) {
    throw new BarmantsError(
      'config',
      `${at(section)}: server [${name}] has no 'conninfo': it is required for an active server`,
      { hint: "add conninfo = host=... user=... dbname=postgres to the section, or set active = false" },
    );
  }
  const archiver = v<boolean>('archiver');
  if (archiver) {
    const e = values.get('archiver')!.entry!;
    warnings.push(`${at(e)}: archiver = on for server [${name}]: barmants only archives WAL by streaming (streaming_archiver = on)`);
  }

  const hooks: Record<string, string> = {};
  for (const spec of OPTIONS) {
    if (spec.type === 'command') {
      const cmd = v<string | null>(spec.name);
      if (cmd !== null) hooks[spec.name] = cmd;
    }
  }

  const warnBytes = v<number | null>('slot_retained_wal_warning');
  const critBytes = v<number | null>('slot_retained_wal_critical');
  if (warnBytes !== null && critBytes !== null && warnBytes > critBytes) {
    warnings.push(
      `${at(values.get('slot_retained_wal_warning')!.entry!)}: slot_retained_wal_warning is above slot_retained_wal_critical for server [${name}]: the warning will never show`,
    );
  }

  return {
    name,
    definedAt: { file: section.file, line: section.line },
    description: v('description'),
    active,
    conninfo,
    streamingConninfo: v<string | null>('streaming_conninfo') ?? conninfo,
    backupMethod: 'postgres',
    backupDirectory: v('backup_directory'),
    backupCompression: compression('backup_compression', 'backup_compression_level'),
    walCompression: compression('compression', 'compression_level'),
    immediateCheckpoint: v('immediate_checkpoint'),
    bandwidthLimitKbps: v('bandwidth_limit'),
    minimumRedundancy: v('minimum_redundancy'),
    reuseBackup: v('reuse_backup'),
    backupSyncMethod: v('backup_sync_method'),
    streamingArchiver: v('streaming_archiver'),
    archiver,
    slotName: v('slot_name'),
    createSlot: v('create_slot'),
    streamingArchiverName: v('streaming_archiver_name'),
    streamingBackupName: v('streaming_backup_name'),
    walFlushIntervalMs: v('wal_flush_interval'),
    walReceiverTimeoutMs: v('wal_receiver_timeout'),
    retentionPolicy: v('retention_policy'),
    walRetentionPolicy: 'main',
    lastBackupMaximumAgeSec: v('last_backup_maximum_age'),
    lastBackupMinimumSizeBytes: v('last_backup_minimum_size'),
    lastWalMaximumAgeSec: v('last_wal_maximum_age'),
    checkTimeoutSec: v('check_timeout'),
    backupSchedule: v('backup_schedule'),
    backupScheduleCatchup: v('backup_schedule_catchup'),
    failedBackupRetentionSec: v('failed_backup_retention'),
    minFreeSpaceBytes: v('min_free_space'),
    slotRetainedWalWarningBytes: warnBytes,
    slotRetainedWalCriticalBytes: critBytes,
    passfile: v('passfile'),
    sshKey: v('ssh_key'),
    recoveryOptions: v('recovery_options'),
    hooks,
    shutdownGracePeriodSec: v('shutdown_grace_period'),
    basebackupRetryTimes: v('basebackup_retry_times'),
    basebackupRetrySleepSec: v('basebackup_retry_sleep'),
    source,
  };
}
