/*
 * The shape of one CLI command: yargs options as data, and a handler that takes the parsed
 * arguments and a Context and returns a CommandResult (rendered by the CLI).
 */
import type { Argv } from 'yargs';
import type { CommandResult } from '../../output/index.js';
import type { Context } from '../context.js';

export interface CommandSpec {
  /** yargs command string, e.g. 'backup <servers..>' */
  readonly command: string;
  readonly aliases?: string[];
  readonly describe: string;
  readonly builder?: (y: Argv) => Argv;
  readonly handler: (args: Record<string, any>, ctx: Context) => Promise<CommandResult>;
}
