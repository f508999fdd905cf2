/*
 * WAL retention applied to the archive (wal_retention_policy = main). The pure planner
 * (retention's walRetention) says, from the backups alone, where the WAL still needed begins;
 * the segments before it are then walked and removed a page at a time through the catalog's
 * name index, so a million-segment archive is never held in memory. For each segment the
 * catalog row goes first, then the file: a file the catalog does not list is harmless (the
 * orphan scan reports it), the reverse breaks a restore. Barman's pre/post_wal_delete_script
 * and _retry_script run around each segment when configured, with Barman's WAL environment.
 */
import { unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Catalog, WalSegmentRecord } from '../catalog/index.js';
import type { ServerConfig } from '../config/index.js';
import { failpoint } from '../failpoint/index.js';
import { runHooks } from '../hooks/index.js';
import type { Logger } from '../log/index.js';
import { fsyncDir, isCodec, type Codec, type ServerLayout } from '../repository/index.js';
import { walRetention } from '../retention/index.js';

export interface RemoveWalOptions {
  catalog: Catalog;
  layout: ServerLayout;
  logger: Logger;
  /** the server's hooks: its wal_delete scripts run around each segment */
  server?: Pick<ServerConfig, 'name' | 'hooks'>;
  /** configuration files, for BARMAN_CONFIGURATION */
  configFiles?: string[];
  /** collect the removed names (`delete` lists them, as Barman does); default: count only */
  names?: boolean;
  /** catalog rows read per page; default 2000 */
  pageSize?: number;
}

export interface WalRemoval {
  removed: number;
  /** the removed names, oldest first, when asked for */
  names: string[];
  /** segments sorting before this name were candidates; null = nothing may go */
  before: string | null;
  reason: string;
}

const SEGMENT_PREFIX = /^[0-9A-F]{24}(?:\.partial|\.[0-9A-F]{8}\.backup)?$/;
const UNLINK_LANES = 8;
const WAL_DELETE_HOOKS = ['pre_wal_delete_script', 'pre_wal_delete_retry_script', 'post_wal_delete_retry_script', 'post_wal_delete_script'];

function codecOf(s: WalSegmentRecord): Codec {
  return s.compression && isCodec(s.compression) ? s.compression : 'none';
}

async function unlinkIfPresent(path: string): Promise<string | null> {
  try {
    await unlink(path);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    return `cannot remove ${path}: ${(err as Error).message}`;
  }
}

/**
 * Removes archived segments no remaining backup needs: those before the oldest begin_wal of a
 * backup that needs continuous WAL, except the ranges of keep:standalone backups. Never removes
 * anything while no DONE backup exists (the archive is then the only copy of the history).
 */
export async function removeUnneededWal(o: RemoveWalOptions): Promise<WalRemoval> {
  const { catalog, layout } = o;
  const server = layout.server;
  const log = o.logger.child({ server, component: 'retention' });
  const none = (reason: string, before: string | null = null): WalRemoval => ({ removed: 0, names: [], before, reason });

  const backups = catalog.listBackups(server).map((b) => ({
    backupId: b.backupId, status: b.status, beginTime: b.beginTime, endTime: b.endTime, keep: b.keep,
    beginWal: b.beginWal, endWal: b.endWal, timeline: b.timeline, verdict: b.status === 'DONE' ? ('VALID' as const) : ('NONE' as const),
  }));
  if (!backups.some((b) => b.status === 'DONE')) return none('no DONE backup: the archive is kept whole');
  // The plan depends on the backups only; the segments are walked below, never listed whole.
  const plan = walRetention({ backups, segments: [] });
  const before = plan.removableBefore;
  if (before === null) return none(plan.reason);
  const kept = (name: string): boolean => {
    const seg = name.slice(0, 24);
    return plan.keepRanges.some((r) => seg >= r.from && seg <= r.to);
  };

  const hooks = o.server?.hooks ?? {};
  const withHooks = WAL_DELETE_HOOKS.some((h) => hooks[h]);
  const pageSize = Math.max(1, o.pageSize ?? 2000);
  const out: WalRemoval = { removed: 0, names: [], before, reason: plan.reason };
  let after = '';
  for (;;) {
    const page = catalog.listWalSegmentsBefore(server, before, { after, limit: pageSize });
    if (page.length === 0) break;
    after = page[page.length - 1]!.name;
    const todo = page.filter((s) => SEGMENT_PREFIX.test(s.name) && !kept(s.name));
    if (withHooks) {
      for (const seg of todo) await removeOneWithHooks(o, seg, hooks, log);
    } else if (todo.length > 0) {
      catalog.deleteWalSegments(server, todo.map((s) => s.name));
      failpoint('wal-retention-after-catalog-before-unlink');
      const dirs = new Set<string>();
      // A few unlinks in flight at once: one at a time, a big pruning waits on the thread pool's latency.
      let next = 0;
      const lane = async (): Promise<void> => {
        while (next < todo.length) {
          const seg = todo[next++]!;
          const path = layout.walFilePath(seg.name, codecOf(seg));
          const error = await unlinkIfPresent(path);
          if (error) log.warn(`WAL segment ${seg.name} removed from the catalog but its file stays: ${error}`);
          dirs.add(dirname(path));
        }
      };
      await Promise.all(Array.from({ length: UNLINK_LANES }, lane));
      // One directory fsync per page and directory, not one per file.
      for (const d of dirs) await fsyncDir(d).catch(() => undefined);
    }
    out.removed += todo.length;
    if (o.names) for (const s of todo) out.names.push(s.name);
    if (page.length < pageSize) break;
  }
  if (out.removed > 0) log.info(`removed ${out.removed} WAL segment(s) before ${before}: ${plan.reason}`);
  return out;
}

/** One segment, Barman's way: pre → pre_retry → delete → post_retry → post. */
async function removeOneWithHooks(o: RemoveWalOptions, seg: WalSegmentRecord, hooks: Record<string, string>, log: Logger): Promise<void> {
  const path = o.layout.walFilePath(seg.name, codecOf(seg));
  const archivedAt = Date.parse(seg.archivedAt);
  const vars = {
    SERVER: o.layout.server,
    CONFIGURATION: o.configFiles?.join(',') ?? '',
    SEGMENT: seg.name,
    FILE: path,
    SIZE: seg.storedSize,
    TIMESTAMP: Number.isNaN(archivedAt) ? '' : archivedAt / 1000,
    COMPRESSION: seg.compression && seg.compression !== 'none' ? seg.compression : '',
    ERROR: '',
  };
  const hookLog = log.child({ component: 'wal-delete' });
  // A pre retry script answering 63 throws here: this segment and every later one stay.
  await runHooks({ operation: 'wal_delete', phase: 'pre', hooks, vars, logger: hookLog });
  o.catalog.deleteWalSegments(o.layout.server, [seg.name]);
  failpoint('wal-retention-after-catalog-before-unlink');
  let error = await unlinkIfPresent(path);
  if (error === null) await fsyncDir(dirname(path)).catch(() => undefined);
  else log.warn(`WAL segment ${seg.name} removed from the catalog but its file stays: ${error}`);
  error ??= '';
  await runHooks({ operation: 'wal_delete', phase: 'post', hooks, vars: { ...vars, ERROR: error }, logger: hookLog }).catch((err: unknown) =>
    hookLog.warn(`post_wal_delete hook: ${(err as Error).message}`),
  );
}
