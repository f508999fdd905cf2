// Renders configuration for people: `show-servers` key/value pairs (passwords masked) and the
// README's option table. Both walk OPTIONS, so a new option shows up in both without edits here.

import { maskConninfo } from './conninfo.js';
import type { ServerConfig } from './load.js';
import { OPTIONS, formatRetention, type Compression, type OptionSpec, type RetentionPolicy } from './options.js';

/** Option name → ServerConfig field, for options whose value is stored as is. */
const FIELDS: Record<string, keyof ServerConfig> = {
  description: 'description',
  active: 'active',
  conninfo: 'conninfo',
  streaming_conninfo: 'streamingConninfo',
  backup_method: 'backupMethod',
  backup_directory: 'backupDirectory',
  immediate_checkpoint: 'immediateCheckpoint',
  bandwidth_limit: 'bandwidthLimitKbps',
  minimum_redundancy: 'minimumRedundancy',
  reuse_backup: 'reuseBackup',
  streaming_archiver: 'streamingArchiver',
  archiver: 'archiver',
  slot_name: 'slotName',
  create_slot: 'createSlot',
  streaming_archiver_name: 'streamingArchiverName',
  streaming_backup_name: 'streamingBackupName',
  wal_flush_interval: 'walFlushIntervalMs',
  wal_receiver_timeout: 'walReceiverTimeoutMs',
  retention_policy: 'retentionPolicy',
  wal_retention_policy: 'walRetentionPolicy',
  last_backup_maximum_age: 'lastBackupMaximumAgeSec',
  last_backup_minimum_size: 'lastBackupMinimumSizeBytes',
  last_wal_maximum_age: 'lastWalMaximumAgeSec',
  check_timeout: 'checkTimeoutSec',
  backup_schedule: 'backupSchedule',
  backup_schedule_catchup: 'backupScheduleCatchup',
  failed_backup_retention: 'failedBackupRetentionSec',
  min_free_space: 'minFreeSpaceBytes',
  slot_retained_wal_warning: 'slotRetainedWalWarningBytes',
  slot_retained_wal_critical: 'slotRetainedWalCriticalBytes',
  passfile: 'passfile',
  ssh_key: 'sshKey',
  recovery_options: 'recoveryOptions',
  shutdown_grace_period: 'shutdownGracePeriodSec',
  basebackup_retry_times: 'basebackupRetryTimes',
  basebackup_retry_sleep: 'basebackupRetrySleepSec',
};

function render(spec: OptionSpec, value: unknown): string {
  if (value === null || value === undefined) return '';
  switch (spec.type) {
    case 'bool':
      return value ? 'true' : 'false';
    case 'duration':
      return spec.unit === 'ms' ? `${String(value)} ms` : `${String(value)} seconds`;
    case 'size':
      return `${String(value)} bytes`;
    case 'retention':
      return formatRetention(value as RetentionPolicy);
    case 'conninfo':
      return maskConninfo(String(value));
    case 'list':
      return (value as string[]).join(', ');
    default:
      return String(value);
  }
}

function optionValue(cfg: ServerConfig, spec: OptionSpec): unknown {
  switch (spec.name) {
    case 'backup_compression':
      return (cfg.backupCompression as Compression).codec;
    case 'backup_compression_level':
      return cfg.backupCompression.level ?? null;
    case 'compression':
      return cfg.walCompression.codec;
    case 'compression_level':
      return cfg.walCompression.level ?? null;
  }
  if (spec.type === 'command') return cfg.hooks[spec.name] ?? null;
  const field = FIELDS[spec.name];
  return field === undefined ? undefined : cfg[field];
}

/** Every server option with its effective value, in declaration order, for `show-servers`. */
export function showServer(cfg: ServerConfig): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const spec of OPTIONS) {
    if (spec.ignored || spec.scope === 'global') continue;
    const value = optionValue(cfg, spec);
    if (value === undefined) continue;
    out.push([spec.name, render(spec, value)]);
  }
  return out;
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/** The README's option table, generated from OPTIONS. */
export function renderOptionsMarkdown(): string {
  const lines = [
    '| option | scope | type | default | Barman name | meaning |',
    '|---|---|---|---|---|---|',
  ];
  for (const spec of OPTIONS) {
    if (spec.ignored) continue;
    const type = spec.allowed ? `${spec.type}: ${spec.allowed.join(' \\| ')}` : spec.type === 'duration' && spec.unit === 'ms' ? 'duration (ms)' : spec.type;
    const def = spec.defaultText ?? (spec.default === null ? '–' : spec.default === '' ? '""' : `\`${spec.default}\``);
    const scope = spec.scope === 'both' ? 'global/server' : spec.scope;
    lines.push(`| \`${spec.name}\` | ${scope} | ${cell(type)} | ${cell(def)} | ${spec.barmanAlias ? `\`${spec.barmanAlias}\`` : ''} | ${cell(spec.help)} |`);
  }
  lines.push('', 'Barman options accepted and ignored:', '', '| option | why |', '|---|---|');
  for (const spec of OPTIONS) if (spec.ignored) lines.push(`| \`${spec.name}\` | ${cell(spec.reason ?? '')} |`);
  return lines.join('\n') + '\n';
}
