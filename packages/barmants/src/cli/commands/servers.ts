/*
 * list-servers and show-servers: what is configured, with secrets masked.
 */
import { showServer } from '../../config/index.js';
import { result, table } from '../../output/index.js';
import type { CommandSpec } from './spec.js';

export const serverCommands: CommandSpec[] = [
  {
    command: 'list-servers',
    aliases: ['list-server'],
    describe: 'list the configured servers',
    builder: (y) => y.option('minimal', { type: 'boolean', default: false, describe: 'names only' }),
    async handler(args, ctx) {
      const servers = [...ctx.config.servers.values()];
      const data = servers.map((s) => ({ name: s.name, description: s.description ?? null, active: s.active }));
      const text = args.minimal
        ? servers.map((s) => s.name)
        : servers.map((s) => `${s.name} - ${s.description ?? ''}${s.active ? '' : ' (inactive)'}`.replace(/ - $/, ''));
      return result(data, text);
    },
  },
  {
    command: 'show-servers <servers..>',
    aliases: ['show-server'],
    describe: 'show the effective configuration of servers (passwords masked)',
    async handler(args, ctx) {
      const out: Record<string, Record<string, unknown>> = {};
      const text: string[] = [];
      for (const s of ctx.servers(args.servers as string[])) {
        const rows = showServer(s);
        out[s.name] = Object.fromEntries(rows);
        text.push(`Server ${s.name}:`);
        text.push(...table(['option', 'value'], rows.map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)])).slice(1).map((l) => `\t${l}`));
      }
      return result(out, text);
    },
  },
];
