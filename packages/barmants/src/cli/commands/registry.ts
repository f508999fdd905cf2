/*
 * The list of commands. Each area keeps its commands in its own file so that they can grow
 * independently; this file only gathers them, lazily: a command's module (and what it imports:
 * pg, the codecs, ssh2, the daemon's cron and metrics) is loaded only when that command runs.
 * Start-up time matters: `get-wal` runs as PostgreSQL's restore_command once per segment.
 */
import type { CommandSpec } from './spec.js';

export interface CommandModule {
  /** the command names and aliases the module defines (a unit test keeps this list true) */
  readonly names: readonly string[];
  load(): Promise<CommandSpec[]>;
}

export const COMMAND_MODULES: readonly CommandModule[] = [
  { names: ['list-servers', 'list-server', 'show-servers', 'show-server'], load: async () => (await import('./servers.js')).serverCommands },
  {
    names: ['backup', 'list-backups', 'list-backup', 'show-backup', 'show-backups', 'list-files', 'delete', 'keep', 'verify-backup', 'verify', 'rebuild-catalog'],
    load: async () => (await import('./backup.js')).backupCommands,
  },
  { names: ['receive-wal', 'switch-wal', 'switch-xlog', 'get-wal', 'check-wal-archive', 'replication-status'], load: async () => (await import('./wal.js')).walCommands },
  { names: ['recover', 'restore'], load: async () => (await import('./recover.js')).recoverCommands },
  { names: ['daemon', 'cron'], load: async () => (await import('./daemon.js')).daemonCommands },
  { names: ['check', 'status', 'diagnose'], load: async () => (await import('./monitor.js')).monitorCommands },
];

/**
 * The commands needed to parse `argv`: the modules of the command names it mentions, or every
 * command when it names none or asks for help (help lists them all).
 */
export async function commandsFor(argv: readonly string[]): Promise<CommandSpec[]> {
  const wantsHelp = argv.some((a) => a === '--help' || a === '-h' || a === 'help');
  const named = wantsHelp ? [] : COMMAND_MODULES.filter((m) => argv.some((a) => m.names.includes(a)));
  const modules = named.length ? named : COMMAND_MODULES;
  return (await Promise.all(modules.map((m) => m.load()))).flat();
}

/** Every command (documentation, tests). */
export function allCommands(): Promise<CommandSpec[]> {
  return commandsFor([]);
}
