/*
 * The list of commands. Each area keeps its commands in its own file so that they can grow
 * independently; this file only gathers them.
 */
import type { CommandSpec } from './spec.js';
import { recoverCommands } from './recover.js';
import { serverCommands } from './servers.js';
import { walCommands } from './wal.js';

export const COMMANDS: CommandSpec[] = [...serverCommands, ...walCommands, ...recoverCommands];
