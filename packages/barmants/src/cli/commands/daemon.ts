/*
 * `barmants daemon` (the long-running service: receivers, schedules, maintenance) and
 * `barmants cron` (one maintenance pass, for cron-based setups, as Barman's cron).
 */
import { loadConfig } from '../../config/index.js';
import { Daemon } from '../../daemon/index.js';
import { createLogger } from '../../log/index.js';
import { runMaintenance } from '../../maintenance/index.js';
import { result } from '../../output/index.js';
import type { CommandSpec } from './spec.js';

export const daemonCommands: CommandSpec[] = [
  {
    command: 'daemon',
    describe: 'run the barmants service: WAL receivers, scheduled backups, maintenance (SIGHUP reloads, SIGTERM stops)',
    async handler(_args, ctx) {
      // Invalid configuration at start-up is fatal (exit 2), unlike at reload.
      const config = loadConfig({ path: ctx.args.config });
      // The daemon's own logger: log_file reopened on SIGHUP, log_format, log_level (reloadable).
      const logger = createLogger({
        level: ctx.args.debug ? 'DEBUG' : ctx.args.quiet ? 'WARNING' : config.global.logLevel,
        file: config.global.logFile,
        json: config.global.logFormat === 'json',
        console: true,
      });
      for (const w of config.warnings) logger.warn(w);
      let code: number;
      try {
        const daemon = Daemon.open({ logger, config, ...(ctx.args.config ? { configPath: ctx.args.config } : {}) });
        const uninstall = daemon.installSignalHandlers();
        try {
          code = await daemon.run();
        } finally {
          uninstall();
        }
      } finally {
        await logger.close();
      }
      // A stuck socket or a backup that ignored the stop must not keep the process alive.
      setTimeout(() => process.exit(code), 2000).unref();
      return result({ stopped: true, forced: code !== 0 }, [], code);
    },
  },
  {
    command: 'cron',
    describe: 'run one maintenance pass: complete backups, compress WAL, apply retention, report orphans',
    builder: (y) =>
      y
        .option('server', { type: 'string', array: true, describe: 'only these servers (default: all active)' })
        .option('orphans', { type: 'boolean', default: true, describe: 'also scan for orphaned files' }),
    async handler(args, ctx) {
      const reports = await runMaintenance({
        config: ctx.config,
        catalog: ctx.catalog(),
        logger: ctx.logger,
        orphans: Boolean(args.orphans),
        ...(args.server ? { servers: args.server as string[] } : {}),
      });
      const text: string[] = [];
      for (const r of reports) {
        if (r.skipped) {
          text.push(`${r.server}: skipped (${r.skipped})`);
          continue;
        }
        const parts = [
          `${r.completed.length} backup(s) completed`,
          `${r.compression?.compressed.length ?? 0} WAL segment(s) compressed`,
          `${r.retention?.deleted.length ?? 0} backup(s) and ${r.retention?.walRemoved ?? 0} WAL segment(s) removed by retention`,
        ];
        if (r.orphans) parts.push(`${r.orphans.length} orphan(s)`);
        text.push(`${r.server}: ${parts.join(', ')}`);
        for (const d of r.retention?.deleted ?? []) text.push(`\tdeleted backup ${d.backupId}: ${d.reason}`);
        for (const d of r.retention?.deferred ?? []) text.push(`\tnot deleted yet ${d.backupId}: ${d.reason}`);
        for (const o of r.orphans ?? []) text.push(`\torphan (${o.kind}) ${o.what}: ${o.detail}${o.movedTo ? ` → ${o.movedTo}` : ''}`);
        for (const e of r.errors) text.push(`\terror: ${e}`);
      }
      const failed = reports.some((r) => r.errors.length > 0);
      return result(reports, text, failed ? 1 : 0);
    },
  },
];
