/*
 * `barmants recover`: validates everything (target, plan, WAL, destination) before the first byte
 * is written, then restores the files, copies the WAL the plan needs, writes the recovery
 * configuration and says what to do next. Local here; the remote variant streams the same content
 * over SSH (src/remote/). A failed restore leaves DEST marked incomplete, never looking finished.
 */
import { lstat, mkdir, readFile, readdir, realpath, statfs, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { hostname, userInfo } from 'node:os';
import { parseTimelineHistory, parseWalFileName, historyFileName, type TimelineHistoryEntry } from 'pg-replication/wal';
import type { Catalog, BackupRecord } from '../catalog/index.js';
import type { Config, ServerConfig } from '../config/index.js';
import { BarmantsError } from '../errors/index.js';
import { runHooks } from '../hooks/index.js';
import { resolveBackupRef } from '../backup/resolve.js';
import type { Logger } from '../log/index.js';
import { makeTreeDurable, writeFileDurable } from '../repository/durable.js';
import type { ServerLayout } from '../repository/layout.js';
import { readMembers, readStoredBackupInfo, type BackupMember, type StoredBackupInfo } from './backup-files.js';
import {
  WAL_DIR_NAME, buildRecoveryFiles, cpRestoreCommand, shellQuote, getWalRestoreCommand, walRestoreScriptCommand, pgMajor,
  type ConfLine, type RecoveryFiles, type TargetAction,
} from './config.js';
import { planRecovery, type PlanBackup, type RecoveryPlan, type TargetTimeline } from './plan.js';
import { clearIncomplete, INCOMPLETE_MARKER, isRestoredMember, markIncomplete, restoreMembers, restorePool, type RestoreProgress, type RestoreSummary } from './restore.js';
import type { StoreWorkerPool } from '../repository/store.js';
import { linkTablespaces, parseTablespaceOption, placeTablespaces, type TablespacePlacement } from './tablespaces.js';
import { describeTarget, parseTargetLsn, parseTargetTimeDetailed, parseTargetXid, type RecoveryTarget } from './target.js';
import { copyWalFiles, walFilesForPlan, type WalFileToCopy } from './wal-copy.js';

/** What recover() needs from the CLI's Context (structural, so tests can pass their own). */
export interface RecoverEnv {
  readonly config: Config;
  readonly logger: Logger;
  catalog(): Catalog;
  server(name: string): ServerConfig;
  layout(server: ServerConfig | string): ServerLayout;
  readonly abort?: AbortController;
}

export interface RecoverOptions {
  server: string;
  /** id, name, latest/last, oldest/first; null = choose from the target */
  backupRef: string | null;
  dest: string;
  targetTime?: string;
  targetXid?: string;
  targetLsn?: string;
  targetName?: string;
  targetImmediate?: boolean;
  /** 'current' | 'latest' | a number */
  targetTli?: string;
  exclusive?: boolean;
  targetAction?: TargetAction;
  standbyMode?: boolean;
  /** NAME:PATH, repeatable */
  tablespaces?: string[];
  /** undefined: from recovery_options (get-wal) */
  getWal?: boolean;
  remoteSshCommand?: string | null;
  jobs?: number;
  /** undefined: from recovery_options (delta-restore) */
  delta?: boolean;
  dryRun?: boolean;
  onProgress?: (p: RestoreProgress) => void;
  /** the barmants executable written into a get-wal restore_command */
  barmantsPath?: string;
}

export interface PreparedRecovery {
  server: ServerConfig;
  layout: ServerLayout;
  target: RecoveryTarget;
  plan: RecoveryPlan;
  info: StoredBackupInfo;
  backupDir: string;
  members: BackupMember[];
  placements: TablespacePlacement[];
  dest: string;
  getWal: boolean;
  delta: boolean;
  standby: boolean;
  jobs: number;
  walFiles: WalFileToCopy[];
  /** the recovery_target_timeline written */
  targetTliSetting: number | 'latest';
  warnings: string[];
  bytesToRestore: number;
}

export interface RecoverResult {
  server: string;
  backup_id: string;
  backup_chosen_automatically: boolean;
  destination: string;
  remote: string | null;
  dry_run: boolean;
  target: string;
  target_timeline: number;
  recovery_target_timeline: number | 'latest';
  tablespaces: { name: string; oid: number; location: string; relocated: boolean }[];
  wal: { get_wal: boolean; files: number; first: string | null; last: string | null; partial_included: boolean; bytes: number };
  restore: (RestoreSummary & { throughput_mib_s: number }) | null;
  settings: Record<string, string>;
  modified_settings: ConfLine[];
  dangerous_settings: ConfLine[];
  notes: string[];
  warnings: string[];
  next_steps: string[];
  elapsed_seconds: number;
}

// ------------------------------------------------------------------ validation

function parseTarget(o: RecoverOptions, defaultZone: () => string, warnings: string[]): RecoveryTarget {
  const given = [
    o.targetTime !== undefined && '--target-time', o.targetXid !== undefined && '--target-xid', o.targetLsn !== undefined && '--target-lsn',
    o.targetName !== undefined && '--target-name', o.targetImmediate === true && '--target-immediate',
  ].filter(Boolean);
  if (given.length > 1) throw new BarmantsError('usage', `only one recovery target can be given, got ${given.join(' and ')}`);
  const inclusive = !o.exclusive;
  let t: RecoveryTarget;
  if (o.targetTime !== undefined) {
    const zone = defaultZone();
    const p = parseTargetTimeDetailed(o.targetTime, zone);
    if (!p.zoneGiven) warnings.push(`no time zone in --target-time: read in the server's zone ${zone}`);
    t = { kind: 'time', time: p.time, micros: p.micros, inclusive, text: o.targetTime };
  } else if (o.targetXid !== undefined) t = { kind: 'xid', xid: parseTargetXid(o.targetXid), inclusive };
  else if (o.targetLsn !== undefined) t = { kind: 'lsn', lsn: parseTargetLsn(o.targetLsn), inclusive };
  else if (o.targetName !== undefined) {
    if (o.targetName === '') throw new BarmantsError('usage', '--target-name cannot be empty');
    t = { kind: 'name', name: o.targetName };
  } else if (o.targetImmediate) t = { kind: 'immediate' };
  else t = { kind: 'end' };
  if (o.exclusive && t.kind !== 'time' && t.kind !== 'xid' && t.kind !== 'lsn') {
    throw new BarmantsError('usage', '--exclusive needs --target-time, --target-xid or --target-lsn');
  }
  return t;
}

function parseTli(text: string | undefined): TargetTimeline | null {
  if (text === undefined) return null;
  if (text === 'current' || text === 'latest') return { kind: text };
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 0xffffffff) {
    throw new BarmantsError('usage', `invalid --target-tli "${text}": expected a timeline number, current or latest`);
  }
  return { kind: 'number', tli: Number(text) };
}

function toPlanBackup(b: BackupRecord): PlanBackup | null {
  if (b.beginTime === null || b.endTime === null || b.beginLsn === null || b.endLsn === null || b.beginWal === null ||
    b.endWal === null || b.timeline === null || b.walSegmentSize === null || b.pgVersion === null) return null;
  return {
    backupId: b.backupId, name: b.name, status: b.status, beginTime: b.beginTime, endTime: b.endTime, beginLsn: b.beginLsn,
    endLsn: b.endLsn, beginWal: b.beginWal, endWal: b.endWal, timeline: b.timeline, walSegmentSize: b.walSegmentSize, pgVersion: b.pgVersion,
  };
}

/** Files restored at once when --jobs is not given (capped at one worker per core). */
const DEFAULT_JOBS = 4;

function validJobs(jobs: number): boolean {
  return Number.isInteger(jobs) && jobs >= 1;
}

/** The newest `.partial` in streaming/, if any. */
async function newestPartial(layout: ServerLayout, segSize: number): Promise<{ tli: number; segno: bigint; name: string } | null> {
  let names: string[];
  try {
    names = await readdir(layout.streamingDir);
  } catch {
    return null;
  }
  let best: { tli: number; segno: bigint; name: string } | null = null;
  for (const n of names) {
    const m = /^([0-9A-F]{24})\.partial$/.exec(n);
    if (m === null) continue;
    const p = parseWalFileName(m[1]!, segSize);
    if (best === null || p.tli > best.tli || (p.tli === best.tli && p.segno > best.segno)) best = { ...p, name: m[1]! };
  }
  return best;
}

async function readHistories(catalog: Catalog, layout: ServerLayout): Promise<Map<number, TimelineHistoryEntry[]>> {
  const out = new Map<number, TimelineHistoryEntry[]>();
  for (const h of catalog.listHistoryFiles(layout.server)) {
    const path = layout.walFilePath(historyFileName(h.tli), 'none');
    try {
      out.set(h.tli, parseTimelineHistory(await readFile(path, 'utf8')));
    } catch (e) {
      throw new BarmantsError('integrity', `timeline history file ${path} cannot be read: ${(e as Error).message}`, { cause: e });
    }
  }
  return out;
}

/** A PID file whose process is alive: PostgreSQL runs (or a crashed one's PID was reused: still refuse). */
export async function livePostmasterPid(dir: string): Promise<number | null> {
  let text: string;
  try {
    text = await readFile(join(dir, 'postmaster.pid'), 'utf8');
  } catch {
    return null;
  }
  const pid = Number(text.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
  }
}

async function entriesOf(dir: string): Promise<string[] | null> {
  try {
    return await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') throw new BarmantsError('usage', `${dir} exists and is not a directory`);
    throw e;
  }
}

function inside(child: string, parent: string): boolean {
  const r = relative(parent, child);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
}

/** Local destination checks: the whole list runs before anything is created. */
async function checkLocalDestination(p: PreparedRecovery): Promise<void> {
  const dirs: [string, string][] = [[p.dest, 'destination directory'], ...p.placements.map((t): [string, string] => [t.target, `tablespace ${t.name} location`])];
  for (const [dir, what] of dirs) {
    if (inside(dir, p.layout.home) || inside(p.layout.home, dir)) {
      throw new BarmantsError('unsafe', `the ${what} ${dir} overlaps the barmants repository ${p.layout.home}`, { hint: 'restore somewhere outside barmants_home' });
    }
    const pid = await livePostmasterPid(dir);
    if (pid !== null) {
      throw new BarmantsError('unsafe', `the ${what} ${dir} belongs to a running PostgreSQL (postmaster.pid: process ${pid} is alive)`, {
        hint: 'stop that server first (pg_ctl -D DIR stop), or restore into another directory',
      });
    }
    const entries = await entriesOf(dir);
    if (entries !== null && entries.length > 0 && !p.delta) {
      const incomplete = entries.includes(INCOMPLETE_MARKER);
      throw new BarmantsError('unsafe', `the ${what} ${dir} is not empty${incomplete ? ` (an earlier recovery into it did not finish: ${INCOMPLETE_MARKER})` : ''}`, {
        hint: `choose an empty directory, empty it yourself, or rerun with --delta to reuse what it holds`,
      });
    }
  }
  if (p.info.pgdata !== null && resolve(p.info.pgdata) === p.dest) {
    p.warnings.push(`${p.dest} is the data directory the backup was taken from (no PostgreSQL runs in it now)`);
  }
  // Enough room? Only the data directory's filesystem is checked (tablespaces may be elsewhere).
  try {
    let probe = p.dest;
    while ((await entriesOf(probe).catch(() => null)) === null && dirname(probe) !== probe) probe = dirname(probe);
    const fs = await statfs(probe);
    const free = Number(fs.bavail) * Number(fs.bsize);
    const need = p.bytesToRestore + (p.getWal ? 0 : p.walFiles.reduce((s, f) => s + (f.size ?? 0), 0));
    if (!p.delta && need > free) {
      throw new BarmantsError('io', `not enough free space under ${probe}: the restore needs ${need} bytes, ${free} are free`);
    }
  } catch (e) {
    if (e instanceof BarmantsError) throw e;
  }
}

/** Every check and decision, nothing written. */
export async function prepareRecovery(env: RecoverEnv, o: RecoverOptions): Promise<PreparedRecovery> {
  const server = env.server(o.server);
  const layout = env.layout(server);
  const catalog = env.catalog();
  const warnings: string[] = [];
  if (o.remoteSshCommand == null && !isAbsolute(o.dest)) o = { ...o, dest: resolve(o.dest) };
  if (!isAbsolute(o.dest)) throw new BarmantsError('usage', `the destination ${o.dest} must be an absolute path on the remote host`);

  let resolved: BackupRecord | null = null;
  if (o.backupRef !== null) {
    resolved = resolveBackupRef(catalog, server.name, o.backupRef);
  }
  const records = catalog.listBackups(server.name);
  const zone = (): string => {
    const b = resolved ?? [...records].filter((r) => r.status === 'DONE').sort((a, c) => (a.backupId < c.backupId ? 1 : -1))[0];
    if (b?.serverTimezone) return b.serverTimezone;
    warnings.push("the server's time zone is not recorded in the catalog: a target time without zone is read as UTC");
    return 'UTC';
  };
  const target = parseTarget(o, zone, warnings);
  const targetTli = parseTli(o.targetTli);

  const backups = records.map(toPlanBackup).filter((b): b is PlanBackup => b !== null);
  if (resolved !== null && !backups.some((b) => b.backupId === resolved!.backupId)) {
    throw new BarmantsError('unsafe', `backup ${resolved.backupId} is ${resolved.status}, not DONE: it cannot be restored`, { hint: `run \`barmants list-backups ${server.name}\`` });
  }
  const segSize = backups.find((b) => b.backupId === resolved?.backupId)?.walSegmentSize ?? backups[0]?.walSegmentSize ?? 16 << 20;
  const lastSeg = catalog.lastWalSegment(server.name);
  const partial = await newestPartial(layout, segSize);
  let lastWal: { tli: number; segno: bigint; partial: boolean } | null = lastSeg === null ? null : { tli: lastSeg.timeline, segno: lastSeg.segno, partial: false };
  if (partial !== null && (lastWal === null || partial.tli > lastWal.tli || (partial.tli === lastWal.tli && partial.segno > lastWal.segno))) {
    lastWal = { tli: partial.tli, segno: partial.segno, partial: true };
  }
  const timelineEnds = new Map<number, { segno: bigint; partial: boolean }>();
  for (const tli of catalog.listTimelines(server.name)) {
    const ranges = catalog.walRanges(server.name, tli).ranges;
    const end = ranges[ranges.length - 1];
    if (partial !== null && partial.tli === tli && (end === undefined || partial.segno > end.to)) timelineEnds.set(tli, { segno: partial.segno, partial: true });
    else if (end !== undefined) timelineEnds.set(tli, { segno: end.to, partial: false });
  }
  // A timeline that continues on a newer one ends at its switch point, not at its last segment: let the planner decide.
  const histories = await readHistories(catalog, layout);
  for (const h of histories.values()) for (const e of h) timelineEnds.delete(e.tli);

  const plan = planRecovery({
    backups, backupRef: resolved?.backupId ?? null, target, targetTli, histories,
    walRanges: (tli, from, to) => catalog.missingSegments(server.name, tli, from, to),
    lastWal, timelineEnds,
  });

  const backupDir = layout.backupDir(plan.backup.backupId);
  const info = await readStoredBackupInfo(backupDir);
  if (info.status !== 'DONE') throw new BarmantsError('unsafe', `backup ${info.backupId} is ${info.status} in its backup.info, not DONE`);
  if (pgMajor(info.pgVersion) < 12) {
    throw new BarmantsError('usage', `backup ${info.backupId} is of PostgreSQL ${pgMajor(info.pgVersion)}: barmants recovers 12 and later`);
  }
  const members = await readMembers(backupDir);
  const mapping = new Map<string, string>();
  for (const t of o.tablespaces ?? []) {
    const [name, path] = parseTablespaceOption(t);
    if (mapping.has(name)) throw new BarmantsError('usage', `--tablespace ${name} is given twice`);
    mapping.set(name, path);
  }
  const placements = placeTablespaces(info.tablespaces, mapping);
  for (const m of members) {
    if (m.ts !== null && !placements.some((p) => p.oid === m.ts)) {
      throw new BarmantsError('integrity', `the file list of backup ${info.backupId} names tablespace ${m.ts}, which its backup.info does not list`);
    }
  }
  for (const p of placements) {
    if (inside(p.target, o.dest)) throw new BarmantsError('usage', `tablespace ${p.name} would be restored inside the destination (${p.target})`, { hint: 'give it a location outside the data directory with --tablespace NAME:PATH' });
  }

  const getWal = o.getWal ?? server.recoveryOptions.includes('get-wal');
  const delta = o.delta ?? server.recoveryOptions.includes('delta-restore');
  const standby = o.standbyMode === true;
  const jobs = o.jobs ?? DEFAULT_JOBS;
  if (!validJobs(jobs)) {
    throw new BarmantsError('usage', `--jobs ${String(o.jobs)}: expected a whole number of files restored in parallel, 1 or more`, { hint: 'e.g. --jobs 4' });
  }
  if (o.targetAction !== undefined && target.kind === 'end') {
    throw new BarmantsError('usage', '--target-action needs a recovery target (--target-time, -xid, -lsn, -name or -immediate)');
  }
  // A standby keeps asking for WAL after the copy: a zero-padded .partial copied under its final
  // name would stop it at that point forever, since the complete segment would never replace it.
  const walFiles = getWal ? [] : walFilesForPlan(catalog, layout, plan, { partial: !standby });
  const targetTliSetting: number | 'latest' = standby && (targetTli === null || targetTli.kind === 'latest') ? 'latest' : plan.targetTli;

  let dest = o.dest;
  if (o.remoteSshCommand == null) {
    // A symlinked DEST is fine (a mount point elsewhere), but the checks must see the real place.
    try {
      const st = await lstat(dest);
      if (st.isSymbolicLink()) {
        const real = await realpath(dest);
        warnings.push(`${dest} is a symlink to ${real}: restoring there`);
        dest = real;
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  const prepared: PreparedRecovery = {
    server, layout, target, plan, info, backupDir, members, placements, dest, getWal, delta, standby, jobs, walFiles, targetTliSetting, warnings,
    bytesToRestore: members.filter((m) => m.type === 'file' && isRestoredMember(m)).reduce((s, m) => s + m.size, 0),
  };
  if (o.remoteSshCommand == null) await checkLocalDestination(prepared);
  return prepared;
}

// ------------------------------------------------------------------ execution

/** The barmants executable to name in restore_command: this one when it is the CLI, else PATH's. */
function barmantsExecutable(o: RecoverOptions): string {
  if (o.barmantsPath) return o.barmantsPath;
  const argv1 = process.argv[1];
  if (argv1 && /(^|\/)barmants(\.js)?$/.test(argv1)) return resolve(argv1);
  return 'barmants';
}

export interface RemoteTarget {
  user: string | null;
  host: string;
}

export function restoreCommandFor(p: PreparedRecovery, env: RecoverEnv, o: RecoverOptions, remote: RemoteTarget | null): { restore: string; end: string | null } {
  const configFile = env.config.files[0] ?? null;
  if (!p.getWal) {
    const walDir = join(p.dest, WAL_DIR_NAME);
    return { restore: cpRestoreCommand(walDir), end: p.standby ? null : `rm -fr ${shellQuote(walDir)}` };
  }
  if (remote === null) return { restore: getWalRestoreCommand({ barmants: barmantsExecutable(o), configFile, server: p.server.name, partial: !p.standby }), end: null };
  return {
    restore: walRestoreScriptCommand({ script: 'barmants-wal-restore', user: userInfo().username, host: hostname(), server: p.server.name, configFile, partial: !p.standby }),
    end: null,
  };
}

export function recoveryFilesFor(p: PreparedRecovery, env: RecoverEnv, o: RecoverOptions, remote: RemoteTarget | null, conf: string | null, auto: string | null): RecoveryFiles {
  const cmd = restoreCommandFor(p, env, o, remote);
  return buildRecoveryFiles({
    pgVersion: p.info.pgVersion,
    target: p.target,
    targetTli: p.targetTliSetting,
    action: o.targetAction ?? null,
    standby: p.standby,
    restoreCommand: cmd.restore,
    recoveryEndCommand: cmd.end,
    postgresqlConf: conf,
    postgresqlAutoConf: auto,
    banner: `barmants recover ${p.server.name} ${p.info.backupId} at ${new Date().toISOString()}`,
  });
}

async function readIfExists(path: string): Promise<string | null> {
  try {
    const st = await lstat(path);
    if (!st.isFile()) return null; // a symlinked config is not ours to rewrite
    return await readFile(path, 'utf8');
  } catch {
    return null;
  }
}

export function baseResult(p: PreparedRecovery, o: RecoverOptions, remote: string | null): RecoverResult {
  const wal = p.walFiles.filter((f) => f.kind !== 'history');
  return {
    server: p.server.name,
    backup_id: p.info.backupId,
    backup_chosen_automatically: p.plan.chosenAutomatically,
    destination: p.dest,
    remote,
    dry_run: o.dryRun === true,
    target: describeTarget(p.target),
    target_timeline: p.plan.targetTli,
    recovery_target_timeline: p.targetTliSetting,
    tablespaces: p.placements.map((t) => ({ name: t.name, oid: t.oid, location: t.target, relocated: t.relocated })),
    wal: {
      get_wal: p.getWal, files: p.walFiles.length, first: wal[0]?.name ?? null, last: wal[wal.length - 1]?.name ?? null,
      partial_included: p.plan.includePartial, bytes: 0,
    },
    restore: null,
    settings: {},
    modified_settings: [],
    dangerous_settings: [],
    notes: p.plan.notes,
    warnings: p.warnings,
    next_steps: [],
    elapsed_seconds: 0,
  };
}

export function nextSteps(p: PreparedRecovery, remote: string | null, action: TargetAction | null = null): string[] {
  const steps: string[] = [];
  const where = remote ? ` on ${remote}` : '';
  if (process.getuid?.() === 0 || remote) {
    steps.push(`make the files owned by the user PostgreSQL runs as${where}: chown -R postgres:postgres ${[p.dest, ...p.placements.map((t) => t.target)].join(' ')}`);
  }
  if (p.getWal) steps.push(`the restore_command runs barmants get-wal: PostgreSQL's user${where} must be able to run it and reach the repository`);
  steps.push(`review ${p.dest}/postgresql.auto.conf, then start the server${where}: pg_ctl -D ${p.dest} start`);
  if (p.target.kind !== 'end' && !p.standby && action !== 'promote' && action !== 'shutdown') steps.push('when the target is reached, check the data, then run SELECT pg_wal_replay_resume() (or use --target-action promote next time)');
  steps.push('archiving is off (archive_command = false): set it up again before this server becomes a primary someone depends on');
  return steps;
}

export function renderRecoverText(r: RecoverResult): string[] {
  const lines: string[] = [];
  lines.push(`${r.dry_run ? 'Dry run: nothing was written. ' : ''}${r.remote ? `Starting remote restore on ${r.remote}` : 'Starting local restore'} for server ${r.server} using backup ${r.backup_id}${r.backup_chosen_automatically ? ' (chosen automatically)' : ''}`);
  lines.push(`Destination directory: ${r.destination}`);
  for (const t of r.tablespaces) lines.push(`\tTablespace ${t.name} (oid ${t.oid}) → ${t.location}${t.relocated ? ' (relocated)' : ''}`);
  lines.push(r.target === 'end of the archived WAL' ? 'Recovering to the end of the archived WAL' : `Doing PITR. Recovery target: ${r.target}`);
  lines.push(`Target timeline: ${r.target_timeline} (recovery_target_timeline = ${r.recovery_target_timeline})`);
  if (r.wal.get_wal) lines.push('WAL is fetched at recovery time through get-wal');
  else lines.push(`WAL to copy: ${r.wal.files} file(s)${r.wal.first ? `, ${r.wal.first} .. ${r.wal.last}` : ''}${r.wal.partial_included ? ' (the last is the .partial being received)' : ''}`);
  for (const n of r.notes) lines.push(`NOTE: ${n}`);
  for (const w of r.warnings) lines.push(`WARNING: ${w}`);
  if (r.dry_run) return lines;
  if (r.restore) {
    lines.push(`Copied ${r.restore.files} file(s), ${(r.restore.bytes / 1048576).toFixed(1)} MiB in ${r.restore.seconds.toFixed(1)} s (${r.restore.throughput_mib_s.toFixed(0)} MiB/s)` +
      (r.restore.unchanged || r.restore.removed ? `; delta: ${r.restore.unchanged} unchanged, ${r.restore.removed} removed` : ''));
  }
  if (r.modified_settings.length) {
    lines.push('', 'IMPORTANT', 'These settings have been modified to prevent data losses', '');
    for (const m of r.modified_settings) lines.push(`${m.file} line ${m.line}: ${m.text}`);
  }
  if (r.dangerous_settings.length) {
    lines.push('', 'WARNING', 'You are required to review the following options as potentially dangerous', '');
    for (const d of r.dangerous_settings) lines.push(`${d.file} line ${d.line}: ${d.text}`);
  }
  lines.push('', `Restore operation completed (elapsed time: ${r.elapsed_seconds.toFixed(1)} s)`, 'Your PostgreSQL server has been successfully prepared for recovery!', '', 'Next steps:');
  for (const s of r.next_steps) lines.push(`  - ${s}`);
  return lines;
}

export function hookVars(p: PreparedRecovery, env: RecoverEnv, o: RecoverOptions, error: string | null): Record<string, string | number | null> {
  return {
    VERSION: '0.1.0',
    SERVER: p.server.name,
    CONFIGURATION: env.config.files[0] ?? null,
    ERROR: error,
    BACKUP_ID: p.info.backupId,
    BACKUP_DIR: p.backupDir,
    DESTINATION_DIRECTORY: p.dest,
    TABLESPACES: JSON.stringify(Object.fromEntries(p.placements.map((t) => [t.name, t.target]))),
    REMOTE_COMMAND: o.remoteSshCommand ?? null,
    RECOVER_OPTIONS: JSON.stringify({ get_wal: p.getWal, delta: p.delta, standby_mode: p.standby, target: describeTarget(p.target) }),
  };
}

/** Validates, then (unless dry-run) restores locally or through `--remote-ssh-command`. */
export async function recover(env: RecoverEnv, o: RecoverOptions): Promise<RecoverResult> {
  const started = Date.now();
  // A local restore's workers boot (~0.1-0.2 s each of module loading) while the plan is made.
  const jobs = o.jobs ?? DEFAULT_JOBS;
  const pool = !o.dryRun && o.remoteSshCommand == null && validJobs(jobs) ? restorePool(jobs) : null;
  pool?.warm({ backupCode: false }).catch(() => undefined); // a worker that cannot start fails the restore itself
  try {
    return await recoverWith(env, o, started, pool);
  } finally {
    await pool?.close();
  }
}

async function recoverWith(env: RecoverEnv, o: RecoverOptions, started: number, pool: StoreWorkerPool | null): Promise<RecoverResult> {
  const p = await prepareRecovery(env, o);
  if (o.remoteSshCommand != null) {
    const { recoverRemote } = await import('../remote/index.js');
    return recoverRemote(env, o, p, started);
  }
  const r = baseResult(p, o, null);
  if (o.dryRun) {
    r.elapsed_seconds = (Date.now() - started) / 1000;
    return r;
  }
  const log = env.logger.child({ server: p.server.name, backup: p.info.backupId, component: 'recover' });
  await runHooks({ operation: 'recovery', phase: 'pre', hooks: p.server.hooks, vars: hookVars(p, env, o, null), logger: log });
  let error: string | null = null;
  try {
    await mkdir(p.dest, { recursive: true, mode: 0o700 });
    await markIncomplete(p.dest, `barmants recover ${p.server.name} ${p.info.backupId} started ${new Date().toISOString()} by pid ${process.pid}\n`);
    log.info(`restoring backup ${p.info.backupId} into ${p.dest}`);
    const walDir = join(p.dest, WAL_DIR_NAME);
    const copyWal = async (): Promise<number> => {
      await mkdir(walDir, { mode: 0o700 });
      return copyWalFiles(p.walFiles, walDir, p.jobs, pool ?? undefined);
    };
    // The WAL is copied while the files are restored, by the same workers; not with --delta, whose
    // first pass removes from DEST whatever the backup lacks.
    const walCopy = !p.getWal && !p.delta ? copyWal() : null;
    walCopy?.catch(() => undefined); // awaited below, or on failure before the error goes up
    let lastLog = Date.now();
    const summary = await restoreMembers({
      backupDir: p.backupDir, codec: p.info.codec, members: p.members, dest: p.dest,
      tablespaceLocations: new Map(p.placements.map((t) => [t.oid, t.target])), jobs: p.jobs, delta: p.delta,
      ...(pool ? { pool } : {}),
      signal: env.abort?.signal,
      onProgress: (pr) => {
        o.onProgress?.(pr);
        if (!o.onProgress && Date.now() - lastLog > 10_000) {
          lastLog = Date.now();
          log.info(`restored ${pr.filesDone}/${pr.filesTotal} files, ${(pr.bytesDone / 1048576).toFixed(0)}/${(pr.bytesTotal / 1048576).toFixed(0)} MiB`);
        }
      },
    }).catch(async (e: unknown) => {
      await walCopy?.catch(() => undefined);
      throw e;
    });
    r.restore = { ...summary, throughput_mib_s: summary.seconds > 0 ? summary.bytes / 1048576 / summary.seconds : 0 };
    await linkTablespaces(p.dest, p.placements);
    if (!p.getWal) r.wal.bytes = await (walCopy ?? copyWal());
    const files = recoveryFilesFor(p, env, o, null, await readIfExists(join(p.dest, 'postgresql.conf')), await readIfExists(join(p.dest, 'postgresql.auto.conf')));
    if (files.postgresqlConf !== null) await writeFileDurable(join(p.dest, 'postgresql.conf'), files.postgresqlConf);
    await writeFileDurable(join(p.dest, 'postgresql.auto.conf'), files.postgresqlAutoConf);
    await writeFileDurable(join(p.dest, files.signalFile), '');
    await writeFile(join(p.dest, '.barmants-recover.info'), JSON.stringify(p.info.raw, null, 2) + '\n', { mode: 0o600 });
    r.settings = Object.fromEntries(files.settings);
    r.modified_settings = files.modified;
    r.dangerous_settings = files.dangerous;
    // The marker goes only once every restored byte is on disk (as the remote path's `sync`): a
    // crash of this host after "restored" must not leave a directory that looks complete.
    for (const root of new Set([p.dest, ...p.placements.map((t) => t.target)])) {
      await makeTreeDurable(root, p.server.backupSyncMethod, (m) => log.warn(m));
    }
    await clearIncomplete(p.dest);
  } catch (e) {
    error = (e as Error).message;
    throw e;
  } finally {
    await runHooks({ operation: 'recovery', phase: 'post', hooks: p.server.hooks, vars: hookVars(p, env, o, error), logger: log }).catch((e) => log.warn(String(e)));
  }
  r.next_steps = nextSteps(p, null, o.targetAction ?? null);
  r.elapsed_seconds = (Date.now() - started) / 1000;
  log.info(`backup ${p.info.backupId} restored into ${p.dest} in ${r.elapsed_seconds.toFixed(1)} s`);
  return r;
}

