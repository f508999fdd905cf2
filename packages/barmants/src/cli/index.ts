/*
 * The barmants command line: parses with yargs, runs one command through a Context, renders its
 * result (console or JSON), prints errors as one line plus a HINT, and returns the exit status.
 */
import { readFileSync } from 'node:fs';
import yargs, { type Argv } from 'yargs';
import { BarmantsError, exitCodeOf, formatError } from '../errors/index.js';
import { render, type OutputFormat } from '../output/index.js';
import { commandsFor } from './commands/registry.js';
import { Context } from './context.js';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export async function main(argv: string[], io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = process): Promise<number> {
  // A stray PGREPLICATION would turn every SQL connection into a walsender (PROTOCOL.md pitfall 8).
  delete process.env.PGREPLICATION;
  let exitCode = 0;
  let ctx: Context | null = null;
  let debug = argv.includes('-d') || argv.includes('--debug');
  const parser: Argv = yargs(argv)
    .scriptName('barmants')
    .usage('$0 <command> [options]\n\nPostgreSQL backup and recovery manager (Barman-compatible commands).')
    .option('config', { alias: 'c', type: 'string', describe: 'configuration file (default: ~/.barmants.conf, /etc/barmants.conf, /etc/barmants/barmants.conf)' })
    .option('format', { alias: 'f', choices: ['console', 'json'] as const, default: 'console' as const, describe: 'output format' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'only warnings and errors on stderr' })
    .option('debug', { alias: 'd', type: 'boolean', default: false, describe: 'debug logging and stack traces' })
    .version(VERSION)
    .alias('version', 'v')
    .help()
    .alias('help', 'h')
    .strict()
    .demandCommand(1, 'name a command: run `barmants --help` for the list')
    .recommendCommands()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new BarmantsError('usage', msg);
    });
  for (const spec of await commandsFor(argv)) {
    parser.command({
      command: spec.command,
      aliases: spec.aliases,
      describe: spec.describe,
      builder: (y: Argv) => (spec.builder ? spec.builder(y) : y),
      handler: async (args: Record<string, any>) => {
        debug = Boolean(args.debug);
        ctx = new Context({ config: args.config, format: args.format as OutputFormat, quiet: Boolean(args.quiet), debug });
        const res = await spec.handler(args, ctx);
        io.stdout.write(render(res, ctx.args.format));
        exitCode = res.exitCode ?? 0;
      },
    });
  }
  try {
    await parser.parseAsync();
  } catch (err) {
    io.stderr.write(formatError(err, debug) + '\n');
    exitCode = exitCodeOf(err);
  } finally {
    await (ctx as Context | null)?.close().catch(() => undefined);
  }
  return exitCode;
}
