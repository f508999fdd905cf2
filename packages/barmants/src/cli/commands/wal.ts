/*
 * WAL commands, with Barman's names: receive-wal (the streaming archiver in the foreground, and its
 * slot / reset / stop actions), switch-wal, get-wal (usable as restore_command),
 * check-wal-archive and replication-status.
 */
import { createWriteStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { ReplicationError, SqlState } from 'pg-replication/errors';
import { formatLsn, parseLsn } from 'pg-replication/wal';
import { BarmantsError } from '../../errors/index.js';
import { result, table } from '../../output/index.js';
import { ensureDir } from '../../repository/layout.js';
import { readLockOwner } from '../../repository/lock.js';
import { getWal } from '../../wal/getwal.js';
import type { CommandSpec } from './spec.js';

// The server connections (and pg under them) are loaded by the commands that connect: get-wal,
// PostgreSQL's restore_command, never does.
const postgres = (): Promise<typeof import('../../postgres/index.js')> => import('../../postgres/index.js');

const POLL_MS = 100;

async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() >= deadline) return false;
    await delay(POLL_MS);
  }
}

export const walCommands: CommandSpec[] = [
  {
    command: 'receive-wal <server>',
    describe: 'stream WAL of a server into its archive, in the foreground until SIGINT/SIGTERM',
    builder: (y) =>
      y
        .option('create-slot', { type: 'boolean', default: false, describe: 'create the replication slot (slot_name) and exit' })
        .option('if-not-exists', { type: 'boolean', default: false, describe: 'with --create-slot: an existing slot is not an error' })
        .option('drop-slot', { type: 'boolean', default: false, describe: 'drop the replication slot and exit' })
        .option('reset', { type: 'boolean', default: false, describe: "forget the partial segment: restart from the slot's restart point" })
        .option('stop', { type: 'boolean', default: false, describe: 'stop the running receiver of this server and wait for it' })
        .option('synchronous', { type: 'boolean', describe: 'force (or with --no-synchronous, refuse) synchronous mode; default: automatic' }),
    async handler(args, ctx) {
      const server = ctx.server(args.server as string);
      const layout = ctx.layout(server);
      const log = ctx.logger.child({ server: server.name, component: 'receive-wal' });
      if (args.createSlot || args.dropSlot) {
        const slot = server.slotName;
        if (!slot) throw new BarmantsError('config', `server '${server.name}' has no slot_name`, { hint: 'set slot_name in its configuration section' });
        const { connectReplication, connectionFailure } = await postgres();
        const rc = await connectReplication(server, 'receive-wal');
        try {
          if (args.createSlot) {
            try {
              await rc.createPhysicalSlot(slot, { reserveWal: true });
            } catch (err) {
              if (err instanceof ReplicationError && err.code === SqlState.DuplicateObject) {
                if (args.ifNotExists) return result({ slot, created: false }, `Replication slot '${slot}' already exists`);
                throw new BarmantsError('server', `replication slot '${slot}' already exists on server '${server.name}'`, {
                  hint: 'use --if-not-exists to accept an existing slot',
                });
              }
              throw connectionFailure(server, `cannot create replication slot '${slot}'`, err);
            }
            return result({ slot, created: true }, `Creating physical replication slot '${slot}' on server '${server.name}'\nReplication slot '${slot}' created`);
          }
          try {
            await rc.dropSlot(slot);
          } catch (err) {
            if (err instanceof ReplicationError && err.code === SqlState.UndefinedObject) {
              throw new BarmantsError('notFound', `replication slot '${slot}' does not exist on server '${server.name}'`);
            }
            throw connectionFailure(server, `cannot drop replication slot '${slot}'`, err);
          }
          return result({ slot, dropped: true }, `Dropping physical replication slot '${slot}' on server '${server.name}'\nReplication slot '${slot}' dropped`);
        } finally {
          await rc.close();
        }
      }
      if (args.stop) {
        const owner = await readLockOwner(layout.lockFile('receive-wal'));
        if (!owner) return result({ stopped: false, running: false }, `No receive-wal process running for server '${server.name}'`);
        process.kill(owner.pid, 'SIGTERM');
        const gone = await waitUntil(async () => (await readLockOwner(layout.lockFile('receive-wal'))) === null, 60_000);
        if (!gone) throw new BarmantsError('lock', `receive-wal process ${owner.pid} of server '${server.name}' did not stop within 60 seconds`);
        return result({ stopped: true, pid: owner.pid }, `Stopped receive-wal process ${owner.pid} of server '${server.name}'`);
      }
      // Loaded here, not at the top: get-wal (run once per WAL segment) never needs the receiver.
      const { WalReceiver, resetReceiver } = await import('../../wal/receiver.js');
      if (args.reset) {
        const r = await resetReceiver({ server, layout, catalog: ctx.catalog(), logger: ctx.logger });
        return result({ reset: true, restartAt: r.restartAt, marker: r.marker }, `Resetting receive-wal of server '${server.name}': streaming restarts at ${formatLsn(r.restartAt)} (${r.marker})`);
      }
      if (!server.streamingArchiver) {
        throw new BarmantsError('config', `streaming_archiver is off for server '${server.name}'`, { hint: 'set streaming_archiver = on in its section' });
      }
      const receiver = new WalReceiver({
        server, layout, catalog: ctx.catalog(), logger: ctx.logger,
        ...(args.synchronous !== undefined ? { synchronous: Boolean(args.synchronous) } : {}),
      });
      // First SIGTERM/SIGINT: fsync, final feedback, exit 0. A second one forces.
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals): void => {
        if (++signals > 1) process.exit(130);
        log.info(`received ${sig}`);
        ctx.abort.abort();
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      try {
        log.info(`starting receive-wal for server '${server.name}'`);
        await receiver.run(ctx.abort.signal);
      } finally {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      }
      const p = receiver.positions;
      return result(
        { server: server.name, timeline: p.timeline, received: p.received, flushed: p.flushed, segments: receiver.stats.segments },
        [],
      );
    },
  },
  {
    command: 'switch-wal <server>',
    aliases: ['switch-xlog'],
    describe: 'close the current WAL segment on the server (and wait until it is archived)',
    builder: (y) =>
      y
        .option('force', { type: 'boolean', default: false, describe: 'run CHECKPOINT first' })
        .option('archive', { type: 'boolean', default: false, describe: 'wait until the closed segment is in the archive' })
        .option('archive-timeout', { type: 'number', default: 30, describe: 'seconds to wait with --archive' }),
    async handler(args, ctx) {
      const server = ctx.server(args.server as string);
      const { withSql } = await postgres();
      const { walfile, switched, lsn } = await withSql(server, 'check', async (s) => {
        if (await s.isInRecovery()) {
          throw new BarmantsError('unsafe', `no switch performed because server '${server.name}' is a standby`);
        }
        if (args.force) await s.query('CHECKPOINT');
        const pre = await s.one<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
        const r = await s.switchWal();
        // pg_switch_wal() returns the end of the closed segment's switch record, or the start of the
        // current segment when no switch was needed; either way the segment to wait for holds lsn - 1
        // (pg_walfile_name(lsn) would name the still-open segment in the second case).
        const closed = await s.one<{ walfile: string }>('SELECT pg_walfile_name($1::pg_lsn - 1) AS walfile', [formatLsn(r.lsn)]);
        return { walfile: closed.walfile, lsn: r.lsn, switched: r.lsn > parseLsn(pre.lsn) };
      });
      const text = [switched ? `The WAL file ${walfile} has been closed on server '${server.name}'` : `No switch required for server '${server.name}'`];
      if (!args.archive) return result({ server: server.name, walfile, switched, lsn }, text);
      text.push(`Waiting for the WAL file ${walfile} from server '${server.name}' (max: ${args.archiveTimeout} seconds)`);
      const catalog = ctx.catalog();
      const archived = () => catalog.getWalSegment(server.name, walfile) !== null;
      const timeoutMs = Number(args.archiveTimeout) * 1000;
      const running = await readLockOwner(ctx.layout(server).lockFile('receive-wal'));
      let ok: boolean;
      if (running || archived()) {
        ok = await waitUntil(archived, timeoutMs);
      } else {
        // No receiver runs: fetch the segment ourselves, as Barman runs archive-wal in this loop.
        const { WalReceiver } = await import('../../wal/receiver.js');
        const stop = new AbortController();
        const timer = setTimeout(() => stop.abort(), timeoutMs);
        try {
          await new WalReceiver({ server, layout: ctx.layout(server), catalog, logger: ctx.logger, stopAt: lsn - 1n }).run(stop.signal);
        } finally {
          clearTimeout(timer);
        }
        ok = archived();
      }
      if (!ok) {
        throw new BarmantsError('gap', `the WAL file ${walfile} has not been received in ${args.archiveTimeout} seconds`, {
          hint: `check that receive-wal runs for server '${server.name}' (barmants check ${server.name})`,
        });
      }
      text.push(`Processing xlog segments from streaming for ${server.name}\n\t${walfile}`);
      return result({ server: server.name, walfile, switched, lsn, archived: true }, text);
    },
  },
  {
    command: 'get-wal <server> <wal_name>',
    describe: 'write an archived WAL file (decompressed) to stdout or a directory; exit 1 if absent',
    builder: (y) =>
      y
        .option('output-directory', { alias: 'o', type: 'string', describe: 'write the file into this directory instead of stdout' })
        .option('partial', { alias: 'P', type: 'boolean', default: false, describe: 'also serve the segment being streamed (.partial)' }),
    async handler(args, ctx) {
      const server = ctx.server(args.server as string);
      const name = String(args.wal_name ?? args.walName);
      const got = await getWal(ctx.layout(server), ctx.catalog(), name, { partial: Boolean(args.partial) });
      if (!got) {
        process.stderr.write(`barmants: error: WAL file ${name} not found in the archive of server '${server.name}'\n`);
        return result({ server: server.name, name, found: false }, [], 1);
      }
      if (args.outputDirectory) {
        const dir = String(args.outputDirectory);
        await ensureDir(dir);
        const dest = join(dir, name);
        await pipeline(got.stream, createWriteStream(dest, { mode: 0o600 }));
        return result({ server: server.name, name, found: true, path: dest }, []);
      }
      await pipeline(got.stream, process.stdout, { end: false });
      return result({ server: server.name, name, found: true }, []);
    },
  },
  {
    command: 'check-wal-archive <server>',
    describe: 'check that the WAL archive holds no WAL yet (safe to start archiving this server)',
    builder: (y) => y.option('timeline', { type: 'number', describe: 'only WAL of this timeline or later counts' }),
    async handler(args, ctx) {
      const server = ctx.server(args.server as string);
      const layout = ctx.layout(server);
      const minTli = args.timeline === undefined ? 1 : Number(args.timeline);
      const catalog = ctx.catalog();
      let found = catalog.listTimelines(server.name).filter((t) => t >= minTli).length > 0;
      if (!found) {
        // The files are the truth: a catalog that was not rebuilt must not hide them.
        const dirs = await readdir(layout.walsDir).catch(() => [] as string[]);
        found = dirs.some((d) => /^[0-9A-F]{16}$/.test(d) && Number.parseInt(d.slice(0, 8), 16) >= minTli);
      }
      if (found) {
        return result(
          { server: server.name, passed: false },
          `WAL archive check for server ${server.name} failed: Expected an empty WAL archive but found WAL files (timeline ${minTli} or later)`,
          1,
        );
      }
      return result({ server: server.name, passed: true }, `WAL archive check for server ${server.name} passed`);
    },
  },
  {
    command: 'replication-status <server>',
    describe: "the server's current WAL position and its replication clients, with lag in bytes",
    builder: (y) => y.option('minimal', { type: 'boolean', default: false, describe: 'one line per client' }),
    async handler(args, ctx) {
      const server = ctx.server(args.server as string);
      const { SqlSession } = await postgres();
      const s = await SqlSession.connect(server, 'check');
      try {
        const inRecovery = await s.isInRecovery();
        const cur = await s.one<{ lsn: string | null }>(
          inRecovery ? 'SELECT pg_last_wal_receive_lsn()::text AS lsn' : 'SELECT pg_current_wal_lsn()::text AS lsn',
        );
        const clients = await s.query<Record<string, string | number | null>>(
          `SELECT pid, usename, application_name, client_addr::text AS client_addr, state,
                  sent_lsn::text AS sent_lsn, write_lsn::text AS write_lsn, flush_lsn::text AS flush_lsn, replay_lsn::text AS replay_lsn,
                  sync_state, sync_priority, backend_start::text AS backend_start,
                  pg_wal_lsn_diff($1::pg_lsn, sent_lsn)::bigint AS sent_lag,
                  pg_wal_lsn_diff($1::pg_lsn, write_lsn)::bigint AS write_lag,
                  pg_wal_lsn_diff($1::pg_lsn, flush_lsn)::bigint AS flush_lag,
                  pg_wal_lsn_diff($1::pg_lsn, replay_lsn)::bigint AS replay_lag
             FROM pg_stat_replication ORDER BY application_name, pid`,
          [cur.lsn ?? '0/0'],
        );
        const slots = await s.query<Record<string, string | boolean | null>>(
          `SELECT slot_name, slot_type, active, restart_lsn::text AS restart_lsn,
                  pg_wal_lsn_diff($1::pg_lsn, restart_lsn)::bigint AS retained_bytes
             FROM pg_replication_slots ORDER BY slot_name`,
          [cur.lsn ?? '0/0'],
        );
        const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
        const data = {
          server: server.name,
          inRecovery,
          currentLsn: cur.lsn,
          clients: clients.map((c) => ({
            pid: c.pid, user: c.usename, applicationName: c.application_name, clientAddr: c.client_addr, state: c.state,
            sentLsn: c.sent_lsn, writeLsn: c.write_lsn, flushLsn: c.flush_lsn, replayLsn: c.replay_lsn,
            sentLagBytes: num(c.sent_lag), writeLagBytes: num(c.write_lag), flushLagBytes: num(c.flush_lag), replayLagBytes: num(c.replay_lag),
            syncState: c.sync_state, syncPriority: c.sync_priority, backendStart: c.backend_start,
          })),
          slots: slots.map((r) => ({ ...r, retained_bytes: num(r.retained_bytes) })),
        };
        const text = [`Status of streaming clients for server '${server.name}':`, `  Current LSN on master: ${cur.lsn ?? '-'}`];
        if (data.clients.length === 0) text.push('  No streaming clients attached');
        else if (args.minimal) {
          for (const c of data.clients) text.push(`  ${c.applicationName} ${c.state} ${c.syncState} flush ${c.flushLsn ?? '-'} (lag ${c.flushLagBytes ?? '-'} B)`);
        } else {
          text.push(`  Number of streaming clients: ${data.clients.length}`);
          text.push(
            ...table(
              ['application_name', 'state', 'sync', 'sent_lsn', 'write_lsn', 'flush_lsn', 'replay_lsn', 'flush_lag_bytes', 'replay_lag_bytes'],
              data.clients.map((c) => [c.applicationName, c.state, c.syncState, c.sentLsn, c.writeLsn, c.flushLsn, c.replayLsn, c.flushLagBytes, c.replayLagBytes]),
            ).map((l) => `  ${l}`),
          );
        }
        return result(data, text);
      } finally {
        await s.close();
      }
    },
  },
];
