/*
 * Backup commands, with Barman's names and arguments: backup, list-backups, show-backup,
 * list-files, delete, keep, verify-backup and rebuild-catalog. Each returns console lines in
 * Barman's format and the same facts as data for `-f json`.
 */
import { open } from 'node:fs/promises';
import { formatLsn, isPartialWalName, parseWalFileName, walFileName, type Lsn } from 'pg-replication';
import {
  deleteBackup,
  keepStatus,
  rebuildCatalog,
  runBackup,
  setKeep,
  storedPath,
  readFileList,
  toInfoJson,
  verifyBackup,
  FILE_LIST,
  type BackupDeps,
  type BackupOptions,
} from '../../backup/index.js';
import type { BackupRecord, Catalog, KeepTarget, WalSegmentRecord } from '../../catalog/index.js';
import type { ServerConfig } from '../../config/index.js';
import { BarmantsError, ERRORS, exitCodeOf, isBarmantsError } from '../../errors/index.js';
import { humanDuration, humanSize, result } from '../../output/index.js';
import { describePolicy, evaluateRetention, type RetentionVerdict } from '../../retention/index.js';
import { acquireLock, fsyncDir, isCodec, type Codec, type ServerLayout } from '../../repository/index.js';
import { WalReceiver, listStreamingDir } from '../../wal/index.js';
import type { Context } from '../context.js';
import { createProgressDisplay } from '../progress.js';
import type { CommandSpec } from './spec.js';
import { resolveBackupRef } from '../../backup/resolve.js';

// ------------------------------------------------------------------ shared helpers

/** Python's time.ctime() in local time: `Tue Nov 24 20:04:31 2026`. */
export function ctime(iso: string | null): string {
  if (!iso) return '-';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p = (n: number) => String(n).padStart(2, '0');
  return `${days[d.getDay()]} ${months[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${d.getFullYear()}`;
}

function codecOf(rec: BackupRecord): Codec {
  return rec.compression && isCodec(rec.compression) ? rec.compression : 'none';
}

function verdictText(v: RetentionVerdict): string {
  return v === 'POTENTIALLY_OBSOLETE' ? 'OBSOLETE*' : v === 'NONE' ? '-' : v;
}

/** The facts list-backups and show-backup share: WAL sizes around each backup, retention. */
interface BackupFacts {
  rec: BackupRecord;
  previous: BackupRecord | null;
  next: BackupRecord | null;
  /** segments begin_wal..end_wal */
  required: WalSegmentRecord[];
  /** segments after end_wal, before the next backup's begin_wal */
  after: WalSegmentRecord[];
  retention: RetentionVerdict;
}

function backupFacts(server: ServerConfig, catalog: Catalog): BackupFacts[] {
  const backups = catalog.listBackups(server.name);
  const segs = catalog.listWalSegments(server.name);
  const report = evaluateRetention({
    policy: server.retentionPolicy,
    minimumRedundancy: server.minimumRedundancy,
    backups: backups.map((b) => ({
      backupId: b.backupId, status: b.status, beginTime: b.beginTime, endTime: b.endTime, keep: b.keep,
      beginWal: b.beginWal, endWal: b.endWal, timeline: b.timeline,
    })),
    now: new Date(),
  });
  // Previous/next as Barman means them: the neighbouring backups that are not FAILED.
  const usable = backups.filter((b) => b.status !== 'FAILED' && b.status !== 'DELETING');
  return backups.map((rec) => {
    const i = usable.findIndex((b) => b.backupId === rec.backupId);
    const previous = i > 0 ? usable[i - 1]! : i < 0 ? [...usable].reverse().find((b) => b.backupId < rec.backupId) ?? null : null;
    const next = i >= 0 ? usable[i + 1] ?? null : usable.find((b) => b.backupId > rec.backupId) ?? null;
    const required = rec.beginWal && rec.endWal ? segs.filter((s) => s.name >= rec.beginWal! && s.name <= rec.endWal!) : [];
    const after = rec.endWal ? segs.filter((s) => s.name > rec.endWal! && (!next?.beginWal || s.name < next.beginWal)) : [];
    let retention: RetentionVerdict = report.verdicts.get(rec.backupId)?.verdict ?? 'NONE';
    if (rec.keep && rec.status === 'DONE') retention = rec.keep === 'full' ? 'KEEP:FULL' : 'KEEP:STANDALONE';
    return { rec, previous, next, required, after, retention };
  });
}

const sum = (segs: WalSegmentRecord[]) => segs.reduce((a, s) => a + s.storedSize, 0);

function tty(ctx: Context): boolean {
  return Boolean(process.stderr.isTTY) && ctx.args.format === 'console' && !ctx.args.quiet;
}

/** Runs `fn` per server; one server's failure does not stop the others (as Barman's `all`). */
async function perServer<T>(ctx: Context, names: string[], fn: (s: ServerConfig) => Promise<T>): Promise<{ ok: Map<string, T>; failed: Map<string, unknown> }> {
  const ok = new Map<string, T>();
  const failed = new Map<string, unknown>();
  const servers = ctx.servers(names);
  for (const s of servers) {
    try {
      ok.set(s.name, await fn(s));
    } catch (err) {
      if (servers.length === 1) throw err;
      failed.set(s.name, err);
      ctx.logger.error(`server ${s.name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return { ok, failed };
}

// ------------------------------------------------------------------ backup --wal

/**
 * Makes a backup self-contained when no WAL receiver runs: streams its WAL (begin to end) with
 * a WalReceiver that stops at the backup's end LSN. When a receiver holds the receive-wal lock,
 * it already archives this WAL: nothing to do. Failures are logged, not thrown: the backup's
 * files are good, it stays WAITING_FOR_WALS and the command reports it.
 */
export async function fetchBackupWal(deps: BackupDeps, rec: BackupRecord, signal: AbortSignal, timeoutSec: number, slot: string | null = null): Promise<void> {
  const { server, layout, catalog } = deps;
  const log = deps.logger.child({ server: server.name, component: 'backup', backup: rec.backupId });
  if (!rec.beginWal || !rec.endWal || !rec.walSegmentSize || rec.endLsn === null) return;
  const segSize = rec.walSegmentSize;
  const from = parseWalFileName(rec.beginWal, segSize);
  const to = parseWalFileName(rec.endWal, segSize);
  if (from.tli !== to.tli) {
    log.warn(`backup ${rec.backupId} spans timelines ${from.tli} to ${to.tli}: its WAL is left to the receiver`);
    return;
  }
  const missing = catalog.missingSegments(server.name, from.tli, from.segno, to.segno);
  if (missing.length === 0) return;
  let lock;
  try {
    lock = await acquireLock(layout.lockFile('receive-wal'), { purpose: 'backup --wal' });
  } catch (err) {
    if (isBarmantsError(err, 'lock')) {
      log.info('a WAL receiver is running: it archives the WAL this backup needs');
      return;
    }
    throw err;
  }
  try {
    const first = missing[0]!.from;
    const partials = (await listStreamingDir(layout)).filter(isPartialWalName);
    const newest = partials[partials.length - 1];
    if (!newest) {
      // The receiver resumes at the newest .partial in streaming/: an empty one is a start marker
      // (the same as receive-wal --reset writes).
      const marker = `${walFileName(from.tli, first, segSize)}.partial`;
      const fh = await open(`${layout.streamingDir}/${marker}`, 'w', 0o600);
      await fh.sync();
      await fh.close();
      await fsyncDir(layout.streamingDir);
    } else if (parseWalFileName(newest.slice(0, 24), segSize).segno > first) {
      log.error(`cannot fetch the WAL of backup ${rec.backupId}: streaming/${newest} is past its missing segment ${walFileName(from.tli, first, segSize)}`);
      return;
    }
    const stopAt: Lsn = rec.endLsn > 0n ? rec.endLsn - 1n : 0n;
    log.info(`fetching WAL ${walFileName(from.tli, first, segSize)} to ${rec.endWal} (up to ${formatLsn(stopAt)}) for backup ${rec.backupId}`);
    const receiver = new WalReceiver({ server, layout, catalog, logger: deps.logger, stopAt, stopAtTimeline: to.tli, slot, lock: false, synchronous: false, backoffCapMs: 5000 });
    const signals = [signal];
    if (timeoutSec > 0) signals.push(AbortSignal.timeout(timeoutSec * 1000));
    await receiver.run(AbortSignal.any(signals));
  } catch (err) {
    log.error(`cannot fetch the WAL of backup ${rec.backupId}: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    await lock.release();
  }
}

// ------------------------------------------------------------------ commands

function backupSummary(rec: BackupRecord, layout: ServerLayout): string[] {
  const lines = [
    `Backup ${rec.backupId}${rec.name ? ` '${rec.name}'` : ''} of server ${rec.server} in ${layout.backupDir(rec.backupId)}: ${rec.status}`,
  ];
  if (rec.beginLsn !== null) lines.push(`Backup start at LSN: ${formatLsn(rec.beginLsn)} (${rec.beginWal})`);
  if (rec.endLsn !== null) lines.push(`Backup end at LSN: ${formatLsn(rec.endLsn)} (${rec.endWal})`);
  const dedup = rec.deduplicatedSize !== rec.size ? ` (${humanSize(rec.deduplicatedSize)} new on disk)` : '';
  lines.push(`Backup size: ${humanSize(rec.size)}${dedup}`);
  const secs = Number(rec.info.copy_seconds ?? 0);
  lines.push(`Backup completed (start time: ${rec.beginTime}, elapsed time: ${secs < 1 ? 'less than one second' : humanDuration(secs)})`);
  if (rec.status === 'WAITING_FOR_WALS') {
    lines.push(`WARNING: the backup is WAITING_FOR_WALS: it is DONE once ${rec.beginWal} to ${rec.endWal} are archived (run receive-wal, or back up with --wal)`);
  }
  return lines;
}

const backup: CommandSpec = {
  command: 'backup <servers..>',
  describe: 'take a base backup of one or more servers (or all)',
  builder: (y) =>
    y
      .option('name', { type: 'string', describe: 'a friendly name for the backup (usable as its ID)' })
      .option('immediate-checkpoint', { type: 'boolean', describe: 'ask for an immediate checkpoint (--no-immediate-checkpoint: a spread one)' })
      .option('wait', { alias: 'w', type: 'boolean', default: false, describe: 'wait until the WAL the backup needs is archived (DONE)' })
      .option('wait-timeout', { type: 'number', default: 0, describe: 'with --wait or --wal: give up after this many seconds (0 = no limit)' })
      .option('wal', { type: 'boolean', default: false, describe: 'self-contained: fetch the WAL the backup needs when no receiver runs' }),
  async handler(args, ctx) {
    const names = args.servers as string[];
    const onSignal = () => ctx.abort.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const data: Record<string, unknown> = {};
    const text: string[] = [];
    let exitCode = 0;
    try {
      const { ok, failed } = await perServer(ctx, names, async (server) => {
        const layout = ctx.layout(server);
        const deps: BackupDeps = { server, layout, catalog: ctx.catalog(), logger: ctx.logger, configFiles: ctx.config.files };
        const progress = createProgressDisplay({ label: `backup ${server.name}`, logger: ctx.logger, tty: tty(ctx) });
        const opts: BackupOptions = {
          name: args.name as string | undefined,
          immediateCheckpoint: args.immediateCheckpoint as boolean | undefined,
          wait: Boolean(args.wait),
          waitTimeoutSec: Number(args.waitTimeout ?? 0),
          onProgress: (p) => progress.update({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }),
          signal: ctx.abort.signal,
        };
        if (args.wal) opts.fetchWal = (rec, slot) => fetchBackupWal(deps, rec, ctx.abort.signal, Number(args.waitTimeout ?? 0) || 600, slot);
        try {
          return await runBackup(deps, opts);
        } finally {
          progress.stop();
        }
      });
      for (const [name, rec] of ok) {
        data[name] = { ...toInfoJson(rec), backup_dir: ctx.layout(name).backupDir(rec.backupId) };
        text.push(...backupSummary(rec, ctx.layout(name)));
        if (args.wal && rec.status !== 'DONE') exitCode = Math.max(exitCode, ERRORS.gap.exit);
      }
      for (const [name, err] of failed) {
        data[name] = { error: err instanceof Error ? err.message : String(err) };
        text.push(`ERROR: backup of server ${name} failed: ${err instanceof Error ? err.message : String(err)}`);
        exitCode = Math.max(exitCode, exitCodeOf(err));
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    return result(data, text, exitCode);
  },
};

function listLine(f: BackupFacts): string {
  const r = f.rec;
  const head = `${r.server} ${r.backupId}${r.name ? ` '${r.name}'` : ''} - F`;
  if (r.status === 'FAILED' || r.status === 'STARTED' || r.status === 'DELETING') return `${head} - ${r.status}`;
  const size = r.size + sum(f.required);
  let line = `${head} - ${ctime(r.endTime)} - Size: ${humanSize(size)} - WAL Size: ${humanSize(sum(f.after))}`;
  if (r.tablespaces.length) line += ` (tablespaces: ${r.tablespaces.map((t) => `${t.name}:${t.location}`).join(', ')})`;
  if (r.status === 'WAITING_FOR_WALS') line += ' - WAITING_FOR_WALS';
  if (f.retention !== 'VALID' && f.retention !== 'NONE') line += ` - ${verdictText(f.retention)}`;
  return line;
}

function listJson(f: BackupFacts): Record<string, unknown> {
  const r = f.rec;
  const size = r.size + sum(f.required);
  const end = r.endTime ? new Date(r.endTime) : null;
  return {
    backup_id: r.backupId,
    backup_name: r.name,
    backup_type: 'full',
    status: r.status,
    end_time: ctime(r.endTime),
    end_time_timestamp: end ? String(Math.floor(end.getTime() / 1000)) : null,
    retention_status: verdictText(f.retention),
    keep: r.keep,
    size: humanSize(size),
    size_bytes: size,
    deduplicated_size_bytes: r.deduplicatedSize,
    wal_size: humanSize(sum(f.after)),
    wal_size_bytes: sum(f.after),
    tablespaces: r.tablespaces,
    error: r.error,
  };
}

const listBackups: CommandSpec = {
  command: 'list-backups <servers..>',
  aliases: ['list-backup'],
  describe: 'list the backups of one or more servers (or all), newest first',
  builder: (y) => y.option('minimal', { type: 'boolean', default: false, describe: 'backup ids only' }),
  async handler(args, ctx) {
    const data: Record<string, unknown[]> = {};
    const text: string[] = [];
    for (const server of ctx.servers(args.servers as string[])) {
      const facts = backupFacts(server, ctx.catalog()).reverse();
      data[server.name] = facts.map(listJson);
      text.push(...facts.map((f) => (args.minimal ? f.rec.backupId : listLine(f))));
    }
    return result(data, text);
  },
};

function row(label: string, value: unknown, nested = false): string {
  return nested ? `    ${label.padEnd(21)}: ${value ?? '-'}` : `  ${label.padEnd(23)}: ${value ?? '-'}`;
}

const showBackup: CommandSpec = {
  command: 'show-backup <server> <backup_id>',
  aliases: ['show-backups'],
  describe: 'show the details of a backup',
  async handler(args, ctx) {
    const server = ctx.server(args.server as string);
    const catalog = ctx.catalog();
    const rec = resolveBackupRef(catalog, server.name, String(args.backup_id));
    const f = backupFacts(server, catalog).find((x) => x.rec.backupId === rec.backupId)!;
    const requiredSize = sum(f.required);
    const copySeconds = Number(rec.info.copy_seconds ?? 0);
    const segSize = rec.walSegmentSize ?? 16 << 20;
    const lastSeg = catalog.lastWalSegment(server.name);
    const afterHours = rec.endTime ? (Date.now() - new Date(rec.endTime).getTime()) / 3_600_000 : 0;
    const offset = (l: bigint | null) => (l === null ? null : Number(l % BigInt(segSize)));
    const data = {
      ...toInfoJson(rec),
      backup_dir: ctx.layout(server).backupDir(rec.backupId),
      size_with_wals: rec.size + requiredSize,
      wal_size_required: requiredSize,
      wal_num_required: f.required.length,
      wal_until_next_num: f.after.length,
      wal_until_next_size: sum(f.after),
      last_available_wal: lastSeg?.name ?? null,
      retention_policy_status: verdictText(f.retention),
      retention_policy: server.retentionPolicy ? describePolicy(server.retentionPolicy) : null,
      previous_backup_id: f.previous?.backupId ?? null,
      next_backup_id: f.next?.backupId ?? null,
    };
    const t: string[] = [`Backup ${rec.backupId}:`];
    if (rec.name) t.push(row('Backup Name', rec.name));
    t.push(row('Server Name', rec.server), row('System Id', rec.systemId), row('Status', rec.status), row('PostgreSQL Version', rec.pgVersion));
    t.push(row('PGDATA directory', rec.info.pgdata));
    if (rec.status === 'FAILED') {
      t.push(row('Error', rec.error));
      return result(data, t);
    }
    t.push(row('Estimated Cluster Size', humanSize(rec.clusterSize)), '');
    t.push('  Server information:');
    t.push(row('Checksums', rec.info.data_checksums === true ? 'on' : rec.info.data_checksums === false ? 'off' : '-', true), '');
    if (rec.tablespaces.length) {
      t.push('  Tablespaces:');
      for (const ts of rec.tablespaces) t.push(row(ts.name, `${ts.location} (oid: ${ts.oid})`, true));
      t.push('');
    }
    t.push('  Base backup information:');
    t.push(row('Backup Method', 'postgres', true), row('Backup Type', 'full', true));
    t.push(row('Backup Size', `${humanSize(rec.size)} (${humanSize(rec.size + requiredSize)} with WALs)`, true));
    t.push(row('WAL Size', humanSize(requiredSize), true));
    if (rec.deduplicatedSize !== rec.size) {
      const saved = rec.size - rec.deduplicatedSize;
      t.push(row('Resources saved', `${humanSize(saved)} (${rec.size ? ((100 * saved) / rec.size).toFixed(2) : '0.00'}%)`, true));
      t.push(row('Disk usage', humanSize(rec.deduplicatedSize), true));
    }
    t.push(row('Compression', rec.compression ?? 'none', true));
    t.push(row('Timeline', rec.timeline, true), row('Begin WAL', rec.beginWal, true), row('End WAL', rec.endWal, true));
    t.push(row('WAL number', f.required.length, true));
    t.push(row('Begin time', rec.beginTime, true), row('End time', rec.endTime, true));
    t.push(row('Copy time', copySeconds < 1 ? 'less than one second' : humanDuration(copySeconds), true));
    if (copySeconds > 0) t.push(row('Estimated throughput', `${humanSize(Math.round((rec.clusterSize ?? rec.size) / copySeconds))}/s`, true));
    t.push(row('Begin Offset', offset(rec.beginLsn), true), row('End Offset', offset(rec.endLsn), true));
    t.push(row('Begin LSN', rec.beginLsn === null ? null : formatLsn(rec.beginLsn), true), row('End LSN', rec.endLsn === null ? null : formatLsn(rec.endLsn), true));
    if (rec.info.restore_point) t.push(row('Restore point', rec.info.restore_point, true));
    t.push('', '  WAL information:');
    t.push(row('No of files', f.after.length, true), row('Disk usage', humanSize(sum(f.after)), true));
    t.push(row('WAL rate', afterHours > 0 ? `${(f.after.length / afterHours).toFixed(2)}/hour` : '-', true));
    t.push(row('Last available', lastSeg?.name ?? null, true), '');
    t.push('  Catalog information:');
    t.push(row('Retention Policy', server.retentionPolicy || rec.keep ? verdictText(f.retention) : 'not enforced', true));
    t.push(row('Keep', keepStatus(rec), true));
    t.push(row('Previous Backup', f.previous?.backupId ?? '- (this is the oldest base backup)', true));
    t.push(row('Next Backup', f.next?.backupId ?? '- (this is the latest base backup)', true));
    if (rec.status === 'WAITING_FOR_WALS') t.push('', `  WARNING: waiting for WAL ${rec.beginWal} to ${rec.endWal} to be archived`);
    return result(data, t);
  },
};

const listFiles: CommandSpec = {
  command: 'list-files <server> <backup_id>',
  describe: 'list the repository files of a backup (data files and/or the WAL it needs)',
  builder: (y) =>
    y.option('target', {
      choices: ['data', 'wal', 'standalone', 'full'] as const,
      default: 'standalone' as const,
      describe: 'data: base backup files; standalone: + WAL begin..end; wal: WAL from begin to the next backup; full: data + wal',
    }),
  async handler(args, ctx) {
    const server = ctx.server(args.server as string);
    const catalog = ctx.catalog();
    const layout = ctx.layout(server);
    const rec = resolveBackupRef(catalog, server.name, String(args.backup_id));
    const target = args.target as 'data' | 'wal' | 'standalone' | 'full';
    const files: string[] = [];
    if (target !== 'wal') {
      files.push(layout.backupInfoFile(rec.backupId), layout.backupManifestFile(rec.backupId), `${layout.backupDir(rec.backupId)}/${FILE_LIST}`);
      for await (const e of readFileList(layout, rec.backupId)) {
        if (e.type === 'file') files.push(storedPath(layout, rec.backupId, e, codecOf(rec)));
      }
    }
    if (target !== 'data') {
      const f = backupFacts(server, catalog).find((x) => x.rec.backupId === rec.backupId)!;
      const segs = target === 'standalone' ? f.required : [...f.required, ...f.after];
      for (const h of catalog.listHistoryFiles(server.name)) if (target !== 'standalone' || h.tli <= (rec.timeline ?? 1)) files.push(layout.walFilePath(h.name, 'none'));
      for (const s of segs) files.push(layout.walFilePath(s.name, (s.compression ?? 'none') as Codec));
    }
    return result(files, files);
  },
};

const del: CommandSpec = {
  command: 'delete <server> <backup_id>',
  describe: 'delete a backup (refused when kept or below minimum_redundancy), and WAL no backup needs any more',
  async handler(args, ctx) {
    const server = ctx.server(args.server as string);
    const catalog = ctx.catalog();
    const rec = resolveBackupRef(catalog, server.name, String(args.backup_id));
    const r = await deleteBackup({ server, layout: ctx.layout(server), catalog, logger: ctx.logger, configFiles: ctx.config.files }, rec);
    const text = [`Deleting backup ${r.backupId} for server ${server.name}`];
    if (r.walRemoved.length) text.push('Delete associated WAL segments:', ...r.walRemoved.map((n) => `\t${n}`));
    text.push(`Deleted backup ${r.backupId} (start time: ${ctime(new Date(Date.now() - r.seconds * 1000).toISOString())}, elapsed time: ${r.seconds < 1 ? 'less than one second' : humanDuration(r.seconds)})`);
    return result({ server: server.name, backup_id: r.backupId, wal_removed: r.walRemoved, finished_interrupted_deletes: r.finished }, text);
  },
};

const keep: CommandSpec = {
  command: 'keep <server> <backup_id>',
  describe: 'keep a backup forever (exempt from retention and delete), release it, or show its keep status',
  builder: (y) =>
    y
      .option('target', { choices: ['full', 'standalone'] as const, describe: 'full: recoverable to any later point; standalone: only to its end' })
      .option('release', { alias: 'r', type: 'boolean', default: false, describe: 'remove the keep annotation' })
      .option('status', { alias: 's', type: 'boolean', default: false, describe: 'print the keep annotation (full, standalone or nokeep)' }),
  async handler(args, ctx) {
    const given = [args.target !== undefined, Boolean(args.release), Boolean(args.status)].filter(Boolean).length;
    if (given !== 1) throw new BarmantsError('usage', 'keep needs exactly one of --target full|standalone, --release or --status');
    const server = ctx.server(args.server as string);
    const catalog = ctx.catalog();
    let rec = resolveBackupRef(catalog, server.name, String(args.backup_id));
    if (!args.status) rec = await setKeep(catalog, ctx.layout(server), rec, args.release ? null : (args.target as KeepTarget));
    const status = keepStatus(rec);
    return result({ server: server.name, backup_id: rec.backupId, keep: status }, `Keep: ${status}`);
  },
};

const verify: CommandSpec = {
  command: 'verify-backup <server> <backup_id>',
  aliases: ['verify'],
  describe: 're-read every stored file of a backup and check it against its recorded checksum and size',
  async handler(args, ctx) {
    const server = ctx.server(args.server as string);
    const rec = resolveBackupRef(ctx.catalog(), server.name, String(args.backup_id));
    if (rec.status === 'STARTED' || rec.status === 'DELETING') {
      throw new BarmantsError('usage', `backup ${rec.backupId} is ${rec.status}: nothing complete to verify`);
    }
    const layout = ctx.layout(server);
    const r = await verifyBackup(layout, rec);
    const data = {
      server: server.name, backup_id: rec.backupId, ok: r.problems.length === 0, files_checked: r.filesChecked, bytes_checked: r.bytesChecked,
      seconds: r.seconds, problems: r.problems,
    };
    if (r.problems.length === 0) {
      return result(data, `Backup ${rec.backupId} of server ${server.name}: OK (${r.filesChecked} files, ${humanSize(r.bytesChecked)} verified in ${r.seconds.toFixed(1)} s)`);
    }
    const text = [
      `Backup ${rec.backupId} of server ${server.name}: FAILED (${r.problems.length} damaged or missing file(s) in ${layout.backupDir(rec.backupId)})`,
      ...r.problems.map((p) => `\t${p.file}: ${p.problem} (${p.detail})`),
    ];
    ctx.logger.error(`verify-backup ${server.name} ${rec.backupId}: ${r.problems.map((p) => `${p.file} (${p.problem})`).join(', ')}`);
    return result(data, text, ERRORS.integrity.exit);
  },
};

const rebuild: CommandSpec = {
  command: 'rebuild-catalog <servers..>',
  describe: "recreate the catalog of one or more servers (or all) from the repository's files",
  async handler(args, ctx) {
    const data: Record<string, unknown> = {};
    const text: string[] = [];
    let exitCode = 0;
    const { ok, failed } = await perServer(ctx, args.servers as string[], async (server) => {
      const layout = ctx.layout(server);
      const lock = await acquireLock(layout.lockFile('backup'), { purpose: 'rebuild-catalog' });
      try {
        return await rebuildCatalog(ctx.catalog(), layout, ctx.logger);
      } finally {
        await lock.release();
      }
    });
    for (const [name, r] of ok) {
      data[name] = { backups: r.backups, wal_segments: r.walSegments, history_files: r.historyFiles, skipped: r.skipped };
      text.push(`Rebuilt the catalog of server ${name}: ${r.backups} backup(s), ${r.walSegments} WAL segment(s), ${r.historyFiles} history file(s)${r.skipped.length ? `, ${r.skipped.length} file(s) skipped` : ''}`);
    }
    for (const [name, err] of failed) {
      data[name] = { error: err instanceof Error ? err.message : String(err) };
      text.push(`ERROR: rebuild-catalog of server ${name} failed: ${err instanceof Error ? err.message : String(err)}`);
      exitCode = Math.max(exitCode, exitCodeOf(err));
    }
    return result(data, text, exitCode);
  },
};

export const backupCommands: CommandSpec[] = [backup, listBackups, showBackup, listFiles, del, keep, verify, rebuild];
