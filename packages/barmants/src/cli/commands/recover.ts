/*
 * recover (alias restore): `barmants recover SRV [BACKUP_ID] DEST [options]`, Barman's options.
 * Parses, calls recover(), renders; a progress bar on a TTY (stderr), log lines otherwise.
 */
import { BarmantsError } from '../../errors/index.js';
import { result } from '../../output/index.js';
import { recover, renderRecoverText, type RecoverOptions, type RestoreProgress, type TargetAction } from '../../recovery/index.js';
import type { CommandSpec } from './spec.js';

async function progressBar(enabled: boolean): Promise<{ update: (p: RestoreProgress) => void; stop: () => void } | null> {
  if (!enabled || !process.stderr.isTTY) return null;
  // Loaded only for a terminal: scripts and tests never draw the bar.
  const { default: cliProgress } = await import('cli-progress');
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: 'restoring |{bar}| {percentage}% {done}/{total} MiB, {files}/{filesTotal} files, {rate} MiB/s, ETA {eta_formatted}',
      hideCursor: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  const t0 = Date.now();
  return {
    update(p) {
      const mib = (n: number): string => (n / 1048576).toFixed(0);
      const payload = { done: mib(p.bytesDone), total: mib(p.bytesTotal), files: p.filesDone, filesTotal: p.filesTotal, rate: ((p.bytesDone / 1048576) / Math.max(0.001, (Date.now() - t0) / 1000)).toFixed(0) };
      if (!started) {
        bar.start(Math.max(1, p.bytesTotal), p.bytesDone, payload);
        started = true;
      } else bar.update(p.bytesDone, payload);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

export const recoverCommands: CommandSpec[] = [
  {
    command: 'recover <server> <args..>',
    aliases: ['restore'],
    describe: 'restore a backup into DEST and prepare point-in-time recovery: recover SRV [BACKUP_ID] DEST',
    builder: (y) =>
      y
        .positional('server', { type: 'string', describe: 'server name' })
        .positional('args', { type: 'string', array: true, describe: '[BACKUP_ID] DEST' })
        .option('target-time', { type: 'string', describe: "recover up to this time: ISO-8601 or 'YYYY-MM-DD HH:MM:SS[.ffffff][±TZ]' (no zone: the server's)" })
        .option('target-xid', { type: 'string', describe: 'recover up to this transaction ID' })
        .option('target-lsn', { type: 'string', describe: 'recover up to this WAL location (X/Y)' })
        .option('target-name', { type: 'string', describe: 'recover up to this restore point (pg_create_restore_point)' })
        .option('target-immediate', { type: 'boolean', describe: 'stop as soon as the backup is consistent' })
        .option('target-tli', { type: 'string', describe: 'target timeline: a number, current or latest' })
        .option('exclusive', { type: 'boolean', default: false, describe: 'stop just before the target (time, xid, lsn)' })
        .option('target-action', { choices: ['pause', 'promote', 'shutdown'], describe: 'what PostgreSQL does at the target' })
        .option('standby-mode', { type: 'boolean', default: false, describe: 'write standby.signal: the restored server stays a standby' })
        .option('tablespace', { type: 'string', array: true, describe: 'NAME:PATH, restore a tablespace elsewhere (repeatable)' })
        .option('get-wal', { type: 'boolean', describe: 'fetch WAL at recovery time with barmants get-wal (default: recovery_options)' })
        .option('remote-ssh-command', { type: 'string', describe: 'restore on another host: "ssh [-p PORT] [-i KEY] user@host"' })
        .option('jobs', { alias: 'j', type: 'number', default: 4, describe: 'files restored in parallel' })
        .option('delta', { alias: 'delta-restore', type: 'boolean', describe: 'reuse DEST: rewrite only differing files, remove extras' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'check and print the plan, change nothing' }),
    async handler(args, ctx) {
      const rest = (args.args as string[]).map(String);
      if (rest.length < 1 || rest.length > 2) {
        throw new BarmantsError('usage', `recover takes SRV [BACKUP_ID] DEST, got ${rest.length + 1} argument(s)`);
      }
      const [backupRef, dest] = rest.length === 2 ? [rest[0]!, rest[1]!] : [null, rest[0]!];
      if (dest.includes(':') && args['remote-ssh-command'] === undefined) {
        throw new BarmantsError('usage', `the destination "${dest}" contains ':': to restore on another host use --remote-ssh-command`);
      }
      const bar = await progressBar(ctx.args.format === 'console' && !ctx.args.quiet);
      const o: RecoverOptions = {
        server: String(args.server),
        backupRef: backupRef === 'auto' ? null : backupRef,
        dest,
        targetTime: args['target-time'],
        targetXid: args['target-xid'],
        targetLsn: args['target-lsn'],
        targetName: args['target-name'],
        targetImmediate: args['target-immediate'],
        targetTli: args['target-tli'],
        exclusive: args.exclusive,
        targetAction: args['target-action'] as TargetAction | undefined,
        standbyMode: args['standby-mode'],
        tablespaces: args.tablespace,
        getWal: args['get-wal'],
        remoteSshCommand: args['remote-ssh-command'] ?? null,
        jobs: args.jobs,
        delta: args.delta,
        dryRun: args['dry-run'],
        ...(bar ? { onProgress: bar.update } : {}),
      };
      try {
        const r = await recover(ctx, o);
        bar?.stop();
        return result(r, renderRecoverText(r));
      } catch (e) {
        bar?.stop();
        throw e;
      }
    },
  },
];
