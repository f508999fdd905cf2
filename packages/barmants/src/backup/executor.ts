/*
 * `barmants backup`: one base backup over the replication protocol, stored file by file in the
 * repository (docs/REPOSITORY.md). Each archive member is hashed (BLAKE3 for our checksum, and
 * the manifest's own algorithm to verify the server's manifest), compressed and fsynced by the
 * store workers while the next member arrives. The catalog says STARTED until everything is on
 * disk, then WAITING_FOR_WALS, then DONE once the WAL from begin to end is archived.
 */
import { mkdirSync } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  parseManifest,
  segmentOf,
  walFileName,
  type BackupEntry,
  type BackupStartInfo,
  type Lsn,
  type MemberSink,
  type ReplicationClient,
} from 'pg-replication';
import type { BackupRecord, Catalog } from '../catalog/index.js';
import type { ServerConfig } from '../config/index.js';
import { BarmantsError, isSystemError } from '../errors/index.js';
import { runHooks } from '../hooks/index.js';
import type { Logger } from '../log/index.js';
import { connectReplication, SqlSession } from '../postgres/index.js';
import {
  acquireLock,
  CONTENT_ALGORITHM,
  checkCatalogIdentity,
  checkIdentity,
  linkDurable,
  StoreWorkerPool,
  makeTreeDurable,
  writeFileDurable,
  type Codec,
  type ServerLayout,
  TRANSFER_BUFFER,
  PlainFileWriter,
} from '../repository/index.js';
import { FileListWriter, checkMemberPath, fileChecksum, readFileList, storedPath, writeBackupInfo, type FileEntry } from './info.js';
import { backupIdFor, BACKUP_ID_RE, isoLocal, RESERVED_BACKUP_NAMES } from './time.js';
import { completeBackupIfArchived, removeTempFiles, repairInterruptedBackups } from './lifecycle.js';
import { failpoint } from '../failpoint/index.js';

/** Members up to this size are batched to the store workers rather than streamed. */
const SMALL_FILE = TRANSFER_BUFFER;
const BATCH_FILES = 256;

export interface BackupProgress {
  bytesDone: number;
  bytesTotal: number | null;
  files: number;
}

export interface BackupOptions {
  name?: string;
  immediateCheckpoint?: boolean;
  /** wait until the backup is DONE (its WAL archived) */
  wait?: boolean;
  waitTimeoutSec?: number;
  /** fetch the backup's WAL itself (self-contained backup), like pg_basebackup -X stream */
  fetchWal?: (rec: BackupRecord, slot: string | null) => Promise<void>;
  onProgress?: (p: BackupProgress) => void;
  signal?: AbortSignal;
}

export interface BackupDeps {
  server: ServerConfig;
  layout: ServerLayout;
  catalog: Catalog;
  logger: Logger;
  configFiles?: string[];
}

function validateName(catalog: Catalog, server: string, name: string): void {
  if (RESERVED_BACKUP_NAMES.has(name) || BACKUP_ID_RE.test(name) || !/^[\w.@:+-][\w .@:+-]{0,99}$/.test(name)) {
    throw new BarmantsError('usage', `invalid backup name '${name}': use up to 100 letters, digits, spaces and . _ - @ : +, not a reserved word (latest, oldest, ...) nor an id-like YYYYMMDDTHHMMSS`);
  }
  if (catalog.resolveBackupId(server, name)) throw new BarmantsError('usage', `backup name '${name}' is already used by another backup of server '${server}'`);
}

async function uniqueBackupId(catalog: Catalog, server: string): Promise<string> {
  for (;;) {
    const id = backupIdFor(new Date());
    if (!catalog.getBackup(server, id)) return id;
    // Two backups in the same second: ids are per-second, as Barman's. Wait for the next one.
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
  }
}

interface ServerFacts {
  versionNum: number;
  inRecovery: boolean;
  timezone: string;
  dataDirectory: string | null;
  configFile: string | null;
  hbaFile: string | null;
  identFile: string | null;
  dataChecksums: boolean | null;
  tablespaceNames: Map<number, string>;
}

async function serverFacts(sql: SqlSession): Promise<ServerFacts> {
  const rows = await sql.query<{ name: string; setting: string | null }>(
    `SELECT name, current_setting(name, true) AS setting FROM (VALUES ('server_version_num'), ('TimeZone'), ('data_directory'), ('config_file'), ('hba_file'), ('ident_file'), ('data_checksums')) AS s(name)`,
  );
  const s = new Map(rows.map((r) => [r.name, r.setting]));
  const ts = await sql.query<{ oid: number; spcname: string }>(`SELECT oid::int AS oid, spcname FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')`);
  return {
    versionNum: Number(s.get('server_version_num')),
    inRecovery: await sql.isInRecovery(),
    timezone: s.get('TimeZone') ?? 'UTC',
    dataDirectory: s.get('data_directory') ?? null,
    configFile: s.get('config_file') ?? null,
    hbaFile: s.get('hba_file') ?? null,
    identFile: s.get('ident_file') ?? null,
    dataChecksums: s.get('data_checksums') === null || s.get('data_checksums') === undefined ? null : s.get('data_checksums') === 'on',
    tablespaceNames: new Map(ts.map((t) => [Number(t.oid), t.spcname])),
  };
}

/** Whether two files hold the same bytes (sizes first, then 1 MiB at a time). */
async function sameBytes(a: string, b: string): Promise<boolean> {
  const fa = await open(a, 'r');
  let fb;
  try {
    fb = await open(b, 'r');
  } catch (err) {
    await fa.close();
    throw err;
  }
  try {
    const [sa, sb] = await Promise.all([fa.stat(), fb.stat()]);
    if (sa.size !== sb.size) return false;
    if (sa.ino === sb.ino && sa.dev === sb.dev) return true;
    // Most members are a few KiB: buffers of the file's size, up to 1 MiB.
    const chunk = Math.min(sa.size, 1 << 20);
    const ba = Buffer.allocUnsafe(chunk);
    const bb = Buffer.allocUnsafe(chunk);
    for (let pos = 0; pos < sa.size; ) {
      const want = Math.min(ba.length, sa.size - pos);
      const [ra, rb] = await Promise.all([fa.read(ba, 0, want, pos), fb.read(bb, 0, want, pos)]);
      if (ra.bytesRead !== want || rb.bytesRead !== want || ba.compare(bb, 0, want, 0, want) !== 0) return false;
      pos += want;
    }
    return true;
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

/** Key of a member for reuse and manifest lookups: the manifest's own path convention. */
function manifestPath(e: { ts: number | null; path: string }): string {
  return e.ts === null ? e.path : `pg_tblspc/${e.ts}/${e.path}`;
}

export async function runBackup(deps: BackupDeps, opts: BackupOptions = {}): Promise<BackupRecord> {
  const { server, layout, catalog } = deps;
  const log = deps.logger.child({ server: server.name, component: 'backup' });
  if (!server.active) throw new BarmantsError('usage', `server '${server.name}' is not active (active = false): no backup taken`);
  if (!server.conninfo) throw new BarmantsError('config', `server '${server.name}' has no conninfo`);
  await layout.ensure();
  const lock = await acquireLock(layout.lockFile('backup'), { purpose: 'backup', log: (m) => log.warn(m) });
  let rec: BackupRecord | null = null;
  const pool = new StoreWorkerPool();
  let sql: SqlSession | null = null;
  const codec = server.backupCompression.codec as Codec;
  let walSlot: string | null = null;
  try {
    // Workers start (loading their codecs) while we connect and the server checkpoints. An
    // uncompressed backup does not use them.
    if (codec !== 'none') pool.warm().catch(() => undefined);
    await repairInterruptedBackups(catalog, layout, log);
    if (opts.name) validateName(catalog, server.name, opts.name);
    sql = await SqlSession.connect(server, 'backup');
    const facts = await serverFacts(sql);
    const rc = await connectReplication(server, 'backup');
    let id;
    let segSize;
    try {
      id = await rc.identifySystem();
      segSize = await rc.walSegmentSize();
    } catch (err) {
      await rc.close();
      throw err;
    }
    try {
      checkCatalogIdentity(catalog, server.name, id.systemId, layout.dir);
    } catch (err) {
      await rc.close();
      throw err;
    }
    await checkIdentity(layout, { systemId: id.systemId, pgVersion: rc.serverVersionNum, walSegmentSize: segSize }, { log: (m) => log.info(m) });
    catalog.upsertServer({ name: server.name, systemId: id.systemId, pgVersion: rc.serverVersionNum, walSegmentSize: segSize });

    // Slots left by a backup --wal that died are stale: we hold the backup lock, no other runs.
    await dropStaleBackupSlots(sql, rc, log);
    const backupId = await uniqueBackupId(catalog, server.name);
    if (opts.fetchWal) {
      // As pg_basebackup -X stream: a slot made before the copy keeps the backup's WAL on the
      // server until it is fetched, whatever checkpoints happen during a long copy.
      walSlot = `${BACKUP_SLOT_PREFIX}${backupId.toLowerCase()}`;
      try {
        await rc.createPhysicalSlot(walSlot, { reserveWal: true });
      } catch (err) {
        await rc.close();
        walSlot = null;
        throw err;
      }
    }
    const started = new Date();
    await mkdir(layout.backupDir(backupId), { recursive: true, mode: 0o700 });
    rec = catalog.insertBackup({
      server: server.name,
      backupId,
      status: 'STARTED',
      name: opts.name ?? null,
      pid: process.pid,
      beginTime: isoLocal(started),
      systemId: id.systemId,
      pgVersion: rc.serverVersionNum,
      walSegmentSize: segSize,
      timeline: id.timeline,
      serverTimezone: facts.timezone,
      compression: codec,
      info: {
        pgdata: facts.dataDirectory,
        config_file: facts.configFile,
        hba_file: facts.hbaFile,
        ident_file: facts.identFile,
        data_checksums: facts.dataChecksums,
        compression_level: server.backupCompression.level ?? null,
        backup_from: facts.inRecovery ? 'standby' : 'primary',
      },
    });
    await writeBackupInfo(layout, rec);
    const logB = log.child({ backup: backupId });
    logB.info(`starting backup ${backupId}${opts.name ? ` (${opts.name})` : ''} of server '${server.name}' (PostgreSQL ${rc.serverVersion}, compression ${codec})`);
    const hookVars = {
      VERSION: '0.1.0',
      SERVER: server.name,
      CONFIGURATION: deps.configFiles?.join(',') ?? '',
      BACKUP_DIR: layout.backupDir(backupId),
      BACKUP_ID: backupId,
      BACKUP_INFO_PATH: layout.backupInfoFile(backupId),
      PREVIOUS_ID: catalog.resolveBackupId(server.name, 'latest')?.backupId ?? '',
      NEXT_ID: '',
      STATUS: 'STARTED',
      ERROR: '',
    };
    await runHooks({ operation: 'backup', phase: 'pre', hooks: server.hooks, vars: hookVars, logger: logB });

    // Reuse: the previous DONE backup's members by manifest path.
    const reuse = new Map<string, { checksum: string; size: number; storedAt: string }>();
    const prev = server.reuseBackup === 'link' ? catalog.resolveBackupId(server.name, 'latest') : null;
    if (prev && prev.compression === codec) {
      for await (const e of readFileList(layout, prev.backupId)) {
        // A file checksummed with another algorithm (a backup older than BLAKE3 here) cannot be
        // matched: it is stored again, once.
        const sum = fileChecksum(e);
        if (e.type === 'file' && sum?.alg === CONTENT_ALGORITHM) reuse.set(manifestPath(e), { checksum: sum.hex, size: e.size, storedAt: storedPath(layout, prev.backupId, e, codec) });
      }
    }

    const files = await FileListWriter.open(layout, backupId);
    const crcs = new Map<string, { size: number; crc: string }>();
    const pending: Promise<void>[] = [];
    let stored = 0;
    let dedup = 0;
    let count = 0;
    let recorded = 0;
    /** the reasons already reported (one line per reason, not per file) */
    const unusable = new Set<string>();
    /**
     * Replaces the copy just stored with a link to the previous backup's identical file, after
     * checking that the previous file still holds exactly the bytes just stored (compression is
     * deterministic for the same codec and level): a damaged file in the repository must not be
     * linked into every later backup. A previous file that is gone or differs keeps the new copy
     * (and says so once for each of the two reasons, whichever file comes first). The rename is atomic: dest is never missing.
     */
    const reuseStored = async (previous: string, target: string): Promise<boolean> => {
      let why: string | null;
      try {
        why = (await sameBytes(previous, target)) ? null : 'differs from what was just stored (damaged, or another codec or level)';
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        why = 'is missing';
      }
      if (why === null) {
        await linkDurable(previous, target);
        return true;
      }
      if (!unusable.has(why)) {
        unusable.add(why);
        logB.warn(`reuse_backup = link: ${previous} ${why}; such files are stored again (run verify-backup on the previous backup)`);
      }
      return false;
    };
    let bytesTotal: number | null = null;
    let startInfo: BackupStartInfo | null = null;
    let manifestAlg: 'CRC32C' = 'CRC32C';
    const t0 = Date.now();
    const madeDirs = new Set<string>();
    type Stored = { checksum: string; size: number; storedSize: number; manifestChecksum?: string };
    const spec = { codec, sync: false, manifestChecksum: manifestAlg, ...(server.backupCompression.level !== undefined ? { level: server.backupCompression.level } : {}) };
    const packer = pool.packer(spec);
    const track = (p: Promise<void> | null): void => {
      if (!p) return;
      p.catch(() => undefined); // observed by the awaits below; not an unhandled rejection meanwhile
      pending.push(p);
    };
    /** Backpressure: the stream pauses while too many stores are outstanding. */
    const settle = (): Promise<void> | undefined => {
      if (pending.length <= 8) return undefined;
      return Promise.all(pending.splice(0, pending.length - 4)).then(() => undefined);
    };
    const mkdirOnce = (dir: string) => {
      if (madeDirs.has(dir)) return;
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      madeDirs.add(dir);
    };

    // Every member goes to the store workers, which hash it (BLAKE3, and CRC32C for the
    // manifest), compress and write it. This thread copies the bytes once, from the receive
    // buffer into a transfer buffer, and keeps the stream moving.
    const onMember = (entry: BackupEntry): MemberSink | null | Promise<MemberSink | null> => {
      if (opts.signal?.aborted) throw new BarmantsError('usage', 'backup interrupted by a signal');
      const ts = entry.tablespace.oid;
      const path = checkMemberPath(entry.path);
      const base: FileEntry = { ts, path, type: 'file', size: entry.size, mode: entry.mode & 0o7777, mtime: entry.mtime ? Math.floor(entry.mtime.getTime() / 1000) : null, stored: 0, link: null, reused: false };
      if (entry.type === 'directory') {
        mkdirOnce(dirname(storedPath(layout, backupId, { ts, path: join(path, 'x') }, 'none')));
        return files.add({ ...base, type: 'dir', size: 0 }).then(() => null);
      }
      if (entry.type === 'symlink') return files.add({ ...base, type: 'symlink', size: 0, link: entry.linkname }).then(() => null);
      if (entry.type !== 'file') {
        logB.warn(`skipping archive member ${path} of unsupported type`);
        return null;
      }
      const dest = storedPath(layout, backupId, { ts, path }, codec);
      mkdirOnce(dirname(dest));
      const key = manifestPath({ ts, path });
      count++;
      const record = async (d: Stored) => {
        crcs.set(key, { size: d.size, crc: d.manifestChecksum ?? '' });
        const prevFile = reuse.get(key);
        stored += d.storedSize;
        if (prevFile && prevFile.checksum === d.checksum && prevFile.size === d.size && (await reuseStored(prevFile.storedAt, dest))) {
          await files.add({ ...base, size: d.size, [CONTENT_ALGORITHM]: d.checksum, stored: 0, reused: true });
        } else {
          dedup += d.storedSize;
          await files.add({ ...base, size: d.size, [CONTENT_ALGORITHM]: d.checksum, stored: d.storedSize });
        }
        if (++recorded === 100) failpoint('backup-mid-copy');
      };
      if (codec === 'none') {
        // Uncompressed: hashed and written from the receive buffer in this thread, no copy at
        // all; workers would add a copy and a thread hop for nothing to compress.
        const w = new PlainFileWriter(dest, manifestAlg);
        return {
          data: (chunk) => w.write(chunk),
          end: () => {
            track(Promise.resolve(w.finish()).then(record));
            return settle();
          },
        };
      }
      if (entry.size <= SMALL_FILE) {
        // Small members (most of a cluster by count) are packed together, one worker trip per buffer.
        track(packer.begin(dest, entry.size));
        return {
          data: (chunk) => packer.append(chunk),
          end: () => {
            packer.commit(record);
            if (packer.pendingFiles >= BATCH_FILES) track(packer.flush());
            return settle();
          },
        };
      }
      // Large members: every worker compresses frames of the same file at once (one table is
      // often most of a cluster); this thread hashes and writes the frames in order.
      const out = pool.openParallelFile(dest, spec);
      return {
        data: (chunk) => (out.push(chunk) ? undefined : out.drained()),
        end: () => {
          track(out.finish().then(record));
          return settle();
        },
      };
    };

    let res;
    try {
      res = await rc.baseBackup(
        {
          label: `barmants backup ${server.name} ${backupId}`,
          fastCheckpoint: opts.immediateCheckpoint ?? server.immediateCheckpoint,
          maxRateKbps: server.bandwidthLimitKbps > 0 ? Math.max(32, server.bandwidthLimitKbps) : undefined,
          manifestChecksums: manifestAlg,
          // A connection gone half-open mid-copy must not hold the backup (and its lock) forever.
          receiveTimeoutMs: server.walReceiverTimeoutMs,
        },
        {
          onStart(info) {
            startInfo = info;
            bytesTotal = info.tablespaces.every((t) => t.size !== null) ? info.tablespaces.reduce((a, t) => a + (t.size ?? 0), 0) : null;
            logB.info(`backup start at ${formatLsnSafe(info.startLsn)} on timeline ${info.timeline}${bytesTotal ? `, about ${Math.round(bytesTotal / 1048576)} MiB to copy` : ''}`);
          },
          onMember,
          onProgress(p) {
            opts.onProgress?.({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal ?? bytesTotal, files: count });
          },
        },
      );
    } catch (err) {
      // A write that failed under a member (ENOSPC, EIO, EACCES...) ends the stream with that error.
      if (isSystemError(err)) throw storageError(layout, server.name, backupId, err);
      throw err;
    } finally {
      await rc.close();
    }
    logB.debug(`stream ended after ${Date.now() - t0} ms`);
    track(packer.flush());
    await Promise.all(pending);
    logB.debug(`stores done after ${Date.now() - t0} ms`);
    void startInfo;

    // The server's manifest: its own checksum, then every file against what we hashed on receipt.
    const manifestBuf = res.manifest;
    if (!manifestBuf || manifestBuf.length === 0) throw new BarmantsError('server', 'the server sent no backup manifest');
    const manifest = parseManifest(manifestBuf);
    if (manifest.systemIdentifier && manifest.systemIdentifier !== id.systemId) {
      throw new BarmantsError('integrity', `backup manifest system identifier ${manifest.systemIdentifier} differs from the server's ${id.systemId}`);
    }
    const problems: string[] = [];
    for (const f of manifest.files) {
      const ours = crcs.get(f.path);
      if (!ours) problems.push(`${f.path}: listed in the manifest but not received`);
      else if (ours.size !== f.size) problems.push(`${f.path}: size ${ours.size}, manifest says ${f.size}`);
      else if (f.checksumAlgorithm === manifestAlg && f.checksum !== ours.crc) problems.push(`${f.path}: checksum ${ours.crc}, manifest says ${f.checksum}`);
    }
    if (problems.length) {
      throw new BarmantsError('integrity', `the received files do not match the server's backup manifest (${problems.length} problem(s)): ${problems.slice(0, 5).join('; ')}`);
    }
    // Members were written without per-file fsync: make the whole tree durable once, before the
    // catalog calls anything in it complete.
    const how = await makeTreeDurable(layout.backupDir(backupId), server.backupSyncMethod, (m) => logB.warn(m));
    logB.debug(`tree made durable (${how}) after ${Date.now() - t0} ms`);
    await writeFileDurable(layout.backupManifestFile(backupId), manifestBuf);
    await files.commit();

    // Close the end segment and mark the backup in WAL, so an idle server does not leave the
    // backup waiting for its WAL forever (Barman #244).
    let restorePoint: string | null = null;
    if (!facts.inRecovery) {
      restorePoint = `barmants_${backupId}`;
      await sql.createRestorePoint(restorePoint);
      await sql.switchWal();
    }
    const endLsn: Lsn = res.endLsn;
    const ended = new Date();
    failpoint('backup-before-done');
    rec = catalog.updateBackup(server.name, backupId, {
      status: 'WAITING_FOR_WALS',
      beginLsn: res.startLsn,
      endLsn,
      beginWal: walFileName(res.startTimeline, segmentOf(res.startLsn, segSize), segSize),
      endWal: walFileName(res.endTimeline, segmentOf(endLsn > 0n ? endLsn - 1n : 0n, segSize), segSize),
      timeline: res.startTimeline,
      endTime: isoLocal(ended),
      size: stored,
      deduplicatedSize: dedup,
      clusterSize: res.bytes,
      tablespaces: res.tablespaces
        .filter((t) => t.oid !== null)
        .map((t) => ({ oid: t.oid!, location: t.location ?? '', name: facts.tablespaceNames.get(t.oid!) ?? String(t.oid) })),
      pid: null,
      info: {
        ...rec.info,
        file_count: count,
        manifest_checksums: manifestAlg,
        copy_seconds: (Date.now() - t0) / 1000,
        restore_point: restorePoint,
        end_timeline: res.endTimeline,
      },
    });
    await writeBackupInfo(layout, rec);
    logB.info(`copy done: ${count} files, ${Math.round(res.bytes / 1048576)} MiB received, ${Math.round(stored / 1048576)} MiB stored in ${((Date.now() - t0) / 1000).toFixed(1)} s; WAL needed: ${rec.beginWal} to ${rec.endWal}`);

    if (opts.fetchWal) await opts.fetchWal(rec, walSlot);
    rec = (await completeBackupIfArchived(catalog, layout, server.name, backupId, logB)) ?? rec;
    if (opts.wait && rec.status !== 'DONE') {
      rec = await waitForWal(catalog, layout, server.name, backupId, logB, opts.waitTimeoutSec ?? 0, opts.signal);
    }
    await runHooks({ operation: 'backup', phase: 'post', hooks: server.hooks, vars: { ...hookVars, STATUS: rec.status }, logger: logB });
    return rec;
  } catch (err) {
    if (rec) {
      const message = err instanceof Error ? err.message : String(err);
      rec = catalog.updateBackup(server.name, rec.backupId, { status: 'FAILED', error: message, pid: null, endTime: isoLocal(new Date()) });
      await writeBackupInfo(layout, rec).catch(() => undefined);
      await removeTempFiles(layout.backupDir(rec.backupId)).catch(() => undefined);
      log.error(`backup ${rec.backupId} FAILED: ${message}`);
      await runHooks({
        operation: 'backup',
        phase: 'post',
        hooks: server.hooks,
        vars: { SERVER: server.name, BACKUP_ID: rec.backupId, BACKUP_DIR: layout.backupDir(rec.backupId), STATUS: 'FAILED', ERROR: message },
        logger: log,
      }).catch(() => undefined);
    }
    throw err;
  } finally {
    if (walSlot) await dropBackupSlot(server, walSlot, log);
    await pool.close();
    await sql?.close();
    await lock.release();
  }
}

const BACKUP_SLOT_PREFIX = 'barmants_backup_';

async function dropBackupSlot(server: ServerConfig, slot: string, log: Logger): Promise<void> {
  try {
    const rc = await connectReplication(server, 'backup');
    try {
      await rc.dropSlot(slot);
    } finally {
      await rc.close();
    }
  } catch (err) {
    log.warn(`could not drop replication slot '${slot}' (${(err as Error).message}): the next backup drops it, or run SELECT pg_drop_replication_slot('${slot}') so that it does not retain WAL`);
  }
}

async function dropStaleBackupSlots(sql: SqlSession, rc: ReplicationClient, log: Logger): Promise<void> {
  const rows = await sql.query<{ slot_name: string }>(`SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'barmants\\_backup\\_%' AND NOT active`);
  for (const r of rows) {
    await rc.dropSlot(r.slot_name).catch(() => undefined);
    log.warn(`dropped replication slot '${r.slot_name}' left by an interrupted backup --wal`);
  }
}

function formatLsnSafe(l: Lsn): string {
  return `${(l >> 32n).toString(16).toUpperCase()}/${(l & 0xffffffffn).toString(16).toUpperCase()}`;
}

async function waitForWal(catalog: Catalog, layout: ServerLayout, server: string, backupId: string, log: Logger, timeoutSec: number, signal?: AbortSignal): Promise<BackupRecord> {
  const deadline = timeoutSec > 0 ? Date.now() + timeoutSec * 1000 : Infinity;
  log.info(`waiting for the WAL of backup ${backupId} to be archived${timeoutSec ? ` (at most ${timeoutSec} s)` : ''}`);
  for (;;) {
    const r = await completeBackupIfArchived(catalog, layout, server, backupId, log);
    if (r && r.status === 'DONE') return r;
    if (signal?.aborted) throw new BarmantsError('usage', 'interrupted while waiting for WAL');
    if (Date.now() > deadline) {
      throw new BarmantsError('gap', `backup ${backupId} is still waiting for its WAL after ${timeoutSec} s`, {
        hint: 'is the WAL receiver running? check with `barmants check` and `barmants receive-wal`',
      });
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** A backup that could not be written: what failed, where, and what to do about it. */
function storageError(layout: ServerLayout, server: string, backupId: string, err: NodeJS.ErrnoException): BarmantsError {
  const dir = layout.backupDir(backupId);
  const why = err.code === 'ENOSPC' || err.code === 'EDQUOT' ? `free space on the file system holding ${layout.dir} (df -h)` : `check the file system holding ${layout.dir}`;
  return new BarmantsError('io', `cannot write backup ${backupId} into ${dir}: ${err.message}`, {
    cause: err,
    hint: `${why}, then run the backup again; \`barmants delete ${server} ${backupId}\` removes what this failed backup wrote`,
  });
}
