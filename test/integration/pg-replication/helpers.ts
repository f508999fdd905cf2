/*
 * Small test-side consumers of pg-replication: a plain-directory base backup writer and a WAL
 * segment writer. Deliberately simple (no barmants code) so the protocol library is tested alone.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdir, open, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  ReplicationClient,
  segmentOf,
  segmentOffset,
  segmentStart,
  walFileName,
  type BaseBackupResult,
  type Lsn,
} from '../../../packages/pg-replication/src/index.js';

/** Writes a base backup as a plain data directory; tablespaces go to `<dir>.ts/<oid>`. */
export async function takePlainBackup(
  rc: ReplicationClient,
  dir: string,
  opts: { label?: string; slowEntryMs?: number } = {},
): Promise<BaseBackupResult & { tablespaceDirs: Map<number, string> }> {
  const tablespaceDirs = new Map<number, string>();
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const res = await rc.baseBackup(
    { label: opts.label ?? 'test', fastCheckpoint: true },
    {
      async onMember(entry) {
        let root = dir;
        if (entry.tablespace.oid !== null) {
          root = `${dir}.ts/${entry.tablespace.oid}`;
          tablespaceDirs.set(entry.tablespace.oid, root);
        }
        const path = join(root, entry.path);
        if (!path.startsWith(root)) throw new Error(`unsafe path ${entry.path}`);
        if (entry.type === 'directory') await mkdir(path, { recursive: true, mode: 0o700 });
        else if (entry.type === 'symlink') {
          await mkdir(dirname(path), { recursive: true });
          await symlink(entry.linkname!, path);
        } else if (entry.type === 'file') {
          await mkdir(dirname(path), { recursive: true, mode: 0o700 });
          if (opts.slowEntryMs) await new Promise((r) => setTimeout(r, opts.slowEntryMs));
          // Chunks are views of the receive buffer, valid during the call: write them now.
          const fd = openSync(path, 'w', 0o600);
          return {
            data(chunk: Buffer) {
              for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off);
            },
            end() {
              closeSync(fd);
            },
          };
        }
        return null;
      },
    },
  );
  return { ...res, tablespaceDirs };
}

/**
 * Streams WAL from `start` (rounded down to a segment) until `until` is reached, writing whole
 * segments into `walDir` (the last one zero-padded, as pg_receivewal's .partial). Returns the
 * names of the segments completed. `perChunkDelayMs` simulates a slow consumer.
 */
export async function streamWal(
  rc: ReplicationClient,
  o: {
    start: Lsn;
    until: Lsn;
    timeline: number;
    segSize: number;
    walDir: string;
    slot?: string;
    perChunkDelayMs?: number;
    statusIntervalMs?: number;
    /** called for each completed segment before its flush is reported (the server still has it) */
    onSegment?: (name: string, content: Buffer) => Promise<void>;
  },
): Promise<{ complete: string[]; flushed: Lsn }> {
  await mkdir(o.walDir, { recursive: true });
  const startSeg = segmentOf(o.start, o.segSize);
  const stream = rc.startReplication({
    start: segmentStart(startSeg, o.segSize),
    timeline: o.timeline,
    slot: o.slot,
    statusIntervalMs: o.statusIntervalMs ?? 1000,
    highWaterMark: 1 << 20,
  });
  const complete: string[] = [];
  let seg = startSeg;
  let buf = Buffer.alloc(o.segSize);
  let pos = segmentStart(startSeg, o.segSize);
  const flushSeg = async (done: boolean) => {
    const name = walFileName(o.timeline, seg, o.segSize);
    const fh = await open(join(o.walDir, name), 'w', 0o600);
    await fh.writeFile(buf);
    await fh.sync();
    await fh.close();
    if (done) complete.push(name);
  };
  for await (const m of stream) {
    if (m.type === 'keepalive') {
      if (m.replyRequested) stream.sendStatus({ flush: segmentStart(seg, o.segSize) });
      continue;
    }
    if (m.walStart !== pos) throw new Error(`gap: expected ${pos} got ${m.walStart}`);
    if (o.perChunkDelayMs) await new Promise((r) => setTimeout(r, o.perChunkDelayMs));
    let data = m.data;
    while (data.length) {
      const off = segmentOffset(pos, o.segSize);
      const n = Math.min(data.length, o.segSize - off);
      data.copy(buf, off, 0, n);
      data = data.subarray(n);
      pos += BigInt(n);
      if (segmentOffset(pos, o.segSize) === 0) {
        await flushSeg(true);
        await o.onSegment?.(complete.at(-1)!, buf);
        seg += 1n;
        buf = Buffer.alloc(o.segSize);
        stream.sendStatus({ flush: pos });
      }
    }
    if (pos >= o.until) break;
  }
  if (segmentOffset(pos, o.segSize) !== 0) await flushSeg(false);
  stream.sendStatus({ flush: segmentStart(seg, o.segSize) });
  await stream.stop();
  return { complete, flushed: segmentStart(seg, o.segSize) };
}

/** Rewrites tablespace_map so that each tablespace points at its restored copy. */
export async function relocateTablespaces(dataDir: string, dirs: Map<number, string>): Promise<void> {
  if (dirs.size === 0) return;
  const lines = [...dirs].map(([oid, d]) => `${oid} ${d}`);
  await writeFile(join(dataDir, 'tablespace_map'), lines.join('\n') + '\n');
}
