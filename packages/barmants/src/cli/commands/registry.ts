/*
 * The list of commands. Each area keeps its commands in its own file so that they can grow
 * independently; this file only gathers them.
 */
import type { CommandSpec } from './spec.js';
import { backupCommands } from './backup.js';
import { recoverCommands } from './recover.js';
import { serverCommands } from './servers.js';
import { daemonCommands } from './daemon.js';
import { walCommands } from './wal.js';
import { monitorCommands } from './monitor.js';

export const COMMANDS: CommandSpec[] = [...serverCommands, ...backupCommands, ...walCommands, ...recoverCommands, ...daemonCommands, ...monitorCommands];
