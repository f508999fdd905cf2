/*
 * Gathers a server's facts once: SQL (conninfo), the replication connection, the catalog and the
 * filesystem, each bounded by the server's check_timeout so that an unreachable server turns
 * into FAILED checks instead of a hung `check all`. Nothing here decides OK or FAILED.
 */
import { constants as fsc } from 'node:fs';
import { access, mkdir, readdir, stat, statfs, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseLsn, parseWalFileName, segmentOf, walFileName } from 'pg-replication';
import type { Catalog } from '../catalog/index.js';
import type { ServerConfig } from '../config/index.js';
import { SqlSession, connectReplication } from '../postgres/index.js';
import { locksDir, readIdentity, readLockOwner, type ServerLayout } from '../repository/index.js';
import type { DirectoryFact, RepositoryFacts, ServerFacts, SlotFacts, SqlFacts, StreamingFacts, Unreachable } from './types.js';

export interface GatherOptions {
  server: ServerConfig;
  layout: ServerLayout;
  /** null when the catalog cannot be opened: repository facts then carry the error */
  catalog: Catalog | null;
  /** overrides the server's check_timeout */
  timeoutSec?: number;
  now?: () => Date;
  /** skip the remote part (status of an inactive server, or tests) */
  remote?: boolean;
}

class Timeout extends Error {}

/** Resolves with `p`, or rejects with Timeout after `ms` (the work itself goes on). */
function bounded<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Timeout()), ms);
  });
  p.catch(() => undefined); // a late failure must not become an unhandled rejection
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function unreachable(err: unknown, timeoutSec: number): Unreachable {
  if (err instanceof Timeout) return { ok: false, error: `barmants check command timed out after ${timeoutSec} seconds` };
  return { ok: false, error: (err as Error)?.message ?? String(err) };
}

async function optional<T>(fn: () => Promise<T>): Promise<T | null> {
  try {
    return await fn();
  } catch {
    return null;
  }
}

/** Facts through conninfo. Each optional query may fail alone (privileges) without failing the rest. */
async function sqlFacts(s: SqlSession, server: ServerConfig): Promise<SqlFacts> {
  const base = await s.one<{ version_text: string; version_num: string; in_recovery: boolean; superuser: boolean; wal_level: string | null }>(
    `SELECT current_setting('server_version') AS version_text, current_setting('server_version_num') AS version_num,
            pg_is_in_recovery() AS in_recovery, coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false) AS superuser,
            current_setting('wal_level', true) AS wal_level`,
  );
  const privileges = await optional(() =>
    s.one<{ ok: boolean }>(
      `SELECT has_function_privilege(current_user, 'pg_switch_wal()', 'EXECUTE')
          AND has_function_privilege(current_user, 'pg_create_restore_point(text)', 'EXECUTE') AS ok`,
    ),
  );
  const settings = await optional(() =>
    s.query<{ name: string; setting: string }>(`SELECT name, setting FROM pg_settings WHERE name IN ('data_directory', 'max_slot_wal_keep_size')`),
  );
  const setting = (n: string) => settings?.find((x) => x.name === n)?.setting ?? null;
  const keep = setting('max_slot_wal_keep_size');
  const systemId = await optional(async () => (await s.one<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()')).id);
  const pos = await optional(() =>
    s.one<{ lsn: string | null; wal: string | null }>(
      `SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END::text AS lsn,
              CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS wal`,
    ),
  );
  const size = await optional(async () =>
    Number((await s.one<{ n: string | null }>('SELECT sum(pg_database_size(oid))::text AS n FROM pg_database WHERE datallowconn')).n),
  );
  let slot: SlotFacts | null = null;
  let slotExists: boolean | null = null;
  if (server.slotName) {
    const rows = await optional(() =>
      s.query<{ active: boolean; restart_lsn: string | null; wal_status: string | null; retained: string | null }>(
        `SELECT active, restart_lsn::text AS restart_lsn, wal_status,
                pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, restart_lsn)::bigint::text AS retained
         FROM pg_replication_slots WHERE slot_name = $1 AND slot_type = 'physical'`,
        [server.slotName],
      ),
    );
    if (rows) {
      slotExists = rows.length > 0;
      const row = rows[0];
      if (row) {
        slot = {
          name: server.slotName, active: row.active, restartLsn: row.restart_lsn ? parseLsn(row.restart_lsn) : null,
          walStatus: row.wal_status, retainedBytes: row.retained === null ? null : Number(row.retained),
        };
      }
    }
  }
  const receiver = await optional(() =>
    s.query<{ state: string; flush_lsn: string | null; sync_state: string | null }>(
      `SELECT state, flush_lsn::text AS flush_lsn, sync_state FROM pg_stat_replication WHERE application_name = $1 ORDER BY backend_start DESC LIMIT 1`,
      [server.streamingArchiverName],
    ),
  );
  const rc = receiver?.[0];
  return {
    ok: true,
    versionNum: Number(base.version_num),
    versionText: base.version_text.split(' ')[0]!,
    superuser: base.superuser,
    backupPrivileges: base.superuser || privileges?.ok === true,
    walLevel: base.wal_level,
    inRecovery: base.in_recovery,
    systemId,
    dataDirectory: setting('data_directory'),
    currentLsn: pos?.lsn ? parseLsn(pos.lsn) : null,
    currentWal: pos?.wal ?? null,
    dataSizeBytes: size !== null && Number.isFinite(size) ? size : null,
    maxSlotWalKeepSizeBytes: keep !== null && Number(keep) >= 0 ? Number(keep) * 1024 * 1024 : null,
    slot,
    slotExists,
    receiverConnection: rc ? { state: rc.state, flushLsn: rc.flush_lsn ? parseLsn(rc.flush_lsn) : null, sync: rc.sync_state } : null,
  };
}

async function gatherSql(server: ServerConfig, ms: number, timeoutSec: number): Promise<SqlFacts | Unreachable> {
  if (!server.conninfo) return { ok: false, error: 'conninfo is not set' };
  let abandoned = false;
  const work = (async () => {
    const s = await SqlSession.connect(server, 'check');
    // A connection that succeeds after the timeout is closed at once.
    if (abandoned) {
      await s.close();
      throw new Timeout();
    }
    try {
      return await sqlFacts(s, server);
    } finally {
      await s.close();
    }
  })();
  try {
    return await bounded(work, ms);
  } catch (err) {
    abandoned = true;
    return unreachable(err, timeoutSec);
  }
}

async function gatherStreaming(server: ServerConfig, ms: number, timeoutSec: number): Promise<StreamingFacts | Unreachable> {
  if (!server.streamingConninfo && !server.conninfo) return { ok: false, error: 'streaming_conninfo is not set' };
  let abandoned = false;
  const work = (async () => {
    const rc = await connectReplication(server, 'check');
    if (abandoned) {
      await rc.close();
      throw new Timeout();
    }
    try {
      const id = await rc.identifySystem();
      return { ok: true as const, systemId: id.systemId, timeline: id.timeline, xlogPos: id.xlogPos };
    } finally {
      await rc.close();
    }
  })();
  try {
    return await bounded(work, ms);
  } catch (err) {
    abandoned = true;
    return unreachable(err, timeoutSec);
  }
}

async function directoryFact(path: string, probe: boolean): Promise<DirectoryFact> {
  try {
    let exists = true;
    try {
      await stat(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      exists = false;
    }
    // As Barman's check: create what is missing (0700), refuse nothing else.
    if (!exists) await mkdir(path, { recursive: true, mode: 0o700 });
    const st = await stat(path);
    if (!st.isDirectory()) return { path, exists: false, writable: false, mode: null, error: 'not a directory' };
    let writable = true;
    try {
      await access(path, fsc.W_OK);
      if (probe) {
        // root passes access(); a real write also catches read-only mounts.
        const f = join(path, `.barmants-check-${process.pid}`);
        await writeFile(f, '', { mode: 0o600 });
        await unlink(f);
      }
    } catch {
      writable = false;
    }
    return { path, exists: true, writable, mode: st.mode & 0o777, error: null };
  } catch (err) {
    return { path, exists: false, writable: false, mode: null, error: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
  }
}

/** How many segments to scan back for the archiving rate: enough for 1 h at ~1 GB/s of WAL. */
const RATE_SCAN = 250;

function repoFromCatalog(cat: Catalog, server: ServerConfig, segSize: number | null, now: Date, facts: RepositoryFacts): void {
  const name = server.name;
  facts.catalogSystemId = cat.getServer(name)?.systemId ?? null;
  facts.backups = cat.listBackups(name).map((b) => ({
    backupId: b.backupId, name: b.name, status: b.status, beginTime: b.beginTime, endTime: b.endTime, beginWal: b.beginWal,
    timeline: b.timeline, systemId: b.systemId, walSegmentSize: b.walSegmentSize, size: b.size,
  }));
  facts.walCount = cat.countWalSegments(name);
  facts.walBytes = cat.walSize(name);
  const first = cat.firstWalSegment(name);
  const last = cat.lastWalSegment(name);
  facts.firstWal = first ? { name: first.name, archivedAt: first.archivedAt } : null;
  facts.lastWal = last ? { name: last.name, archivedAt: last.archivedAt } : null;
  const hb = cat.getHeartbeat(name);
  facts.heartbeat = hb ? { pid: hb.pid, state: hb.state, flushedLsn: hb.flushedLsn, receivedLsn: hb.receivedLsn, message: hb.message, updatedAt: hb.updatedAt } : null;
  if (last) {
    const recent = cat.listWalSegments(name, { timeline: last.timeline, fromSegno: last.segno - BigInt(RATE_SCAN - 1) > 0n ? last.segno - BigInt(RATE_SCAN - 1) : 0n });
    const hourAgo = now.getTime() - 3_600_000;
    const firstAt = Date.parse(first!.archivedAt);
    const windowStart = Math.max(hourAgo, Number.isNaN(firstAt) ? hourAgo : firstAt);
    const segments = recent.filter((s) => Date.parse(s.archivedAt) >= windowStart).length;
    facts.walRate = { segments, windowSec: Math.max(1, (now.getTime() - windowStart) / 1000) };
  }
  // Continuity: from the oldest backup that still counts (not FAILED) onwards, or from the first
  // archived segment when there is no backup yet.
  const size = segSize ?? facts.backups.find((b) => b.walSegmentSize)?.walSegmentSize ?? null;
  if (!last || !size) return;
  const oldest = facts.backups.find((b) => b.status !== 'FAILED' && b.beginWal !== null && b.timeline !== null);
  let startTli: number;
  let startSegno: bigint;
  if (oldest) {
    const p = parseWalFileName(oldest.beginWal!, size);
    startTli = p.tli;
    startSegno = p.segno;
    facts.walCheckedFrom = oldest.beginWal;
  } else {
    startTli = first!.timeline;
    startSegno = first!.segno;
    facts.walCheckedFrom = first!.name;
  }
  const history = new Map(cat.listHistoryFiles(name).map((h) => [h.tli, h]));
  for (const tli of cat.listTimelines(name)) {
    if (tli < startTli) continue;
    const seg = cat.listWalSegments(name, { timeline: tli, limit: 1 })[0];
    if (!seg) continue;
    let from: bigint;
    if (tli === startTli) from = startSegno;
    else {
      // A later timeline starts at its switch point; without a history file, at its first segment.
      const h = history.get(tli);
      from = h ? segmentOf(h.switchLsn, size) : seg.segno;
    }
    // Islands, not rows: a million archived segments must not be read to find the newest one.
    const lastOnTli = cat.walRanges(name, tli, from).ranges.at(-1)?.to;
    if (lastOnTli === undefined) continue;
    for (const g of cat.missingSegments(name, tli, from, lastOnTli)) {
      facts.walGaps.push({ timeline: tli, from: walFileName(tli, g.from, size), to: walFileName(tli, g.to, size), count: Number(g.to - g.from + 1n) });
    }
  }
}

export async function gatherRepository(o: GatherOptions, now: Date): Promise<RepositoryFacts> {
  const { server, layout } = o;
  const facts: RepositoryFacts = {
    identitySystemId: null, identityPath: layout.identityFile, identityError: null, catalogSystemId: null, walSegmentSize: null,
    backups: [], walCount: 0, walBytes: 0, firstWal: null, lastWal: null, walRate: null, walGaps: [], walCheckedFrom: null,
    heartbeat: null, receiverLock: null, directories: [], errorFiles: [], freeBytes: null, totalBytes: null, error: null,
  };
  try {
    const id = await readIdentity(layout);
    facts.identitySystemId = id?.systemId ?? null;
    facts.walSegmentSize = id?.walSegmentSize ?? null;
  } catch (err) {
    facts.identityError = (err as Error).message;
  }
  const dirs = [layout.dir, layout.baseDir, layout.walsDir, layout.streamingDir, layout.errorsDir, locksDir(layout.home)];
  facts.directories = await Promise.all(dirs.map((d, i) => directoryFact(d, i === 0)));
  facts.errorFiles = (await optional(() => readdir(layout.errorsDir))) ?? [];
  const fsStat = await optional(() => statfs(layout.dir));
  if (fsStat) {
    facts.freeBytes = Number(fsStat.bavail) * Number(fsStat.bsize);
    facts.totalBytes = Number(fsStat.blocks) * Number(fsStat.bsize);
  }
  const owner = await optional(() => readLockOwner(layout.lockFile('receive-wal')));
  facts.receiverLock = owner ? { pid: owner.pid, host: owner.host, since: owner.since } : null;
  if (!o.catalog) {
    facts.error = 'catalog unavailable';
    return facts;
  }
  try {
    repoFromCatalog(o.catalog, server, facts.walSegmentSize, now, facts);
  } catch (err) {
    facts.error = `catalog: ${(err as Error).message}`;
  }
  return facts;
}

/** All facts of one server, never throwing and never taking (much) longer than the timeout. */
export async function gatherFacts(o: GatherOptions): Promise<ServerFacts> {
  const now = (o.now ?? (() => new Date()))();
  const timeoutSec = o.timeoutSec ?? o.server.checkTimeoutSec;
  const ms = timeoutSec * 1000;
  const remote = o.remote ?? true;
  const skipped: Unreachable = { ok: false, error: 'not checked' };
  const [sql, streaming, repo] = await Promise.all([
    remote ? gatherSql(o.server, ms, timeoutSec) : Promise.resolve(skipped),
    remote ? gatherStreaming(o.server, ms, timeoutSec) : Promise.resolve(skipped),
    bounded(gatherRepository(o, now), ms).catch((err: unknown) => {
      const e = unreachable(err, timeoutSec).error;
      return { ...emptyRepo(o.layout), error: e, directories: [{ path: o.layout.dir, exists: false, writable: false, mode: null, error: e }] };
    }),
  ]);
  return { server: o.server.name, now, sql, streaming, repo };
}

function emptyRepo(layout: ServerLayout): RepositoryFacts {
  return {
    identitySystemId: null, identityPath: layout.identityFile, identityError: null, catalogSystemId: null, walSegmentSize: null,
    backups: [], walCount: 0, walBytes: 0, firstWal: null, lastWal: null, walRate: null, walGaps: [], walCheckedFrom: null,
    heartbeat: null, receiverLock: null, directories: [], errorFiles: [], freeBytes: null, totalBytes: null, error: null,
  };
}
