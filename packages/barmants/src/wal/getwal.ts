/*
 * get-wal: finds an archived WAL file (segment, history file, or with `partial` the segment
 * being streamed or a timeline's last `.partial`) and hands back its decompressed content. This
 * is what a `restore_command` calls, so "absent" is an ordinary answer (null), not an error.
 */
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { isHistoryFileName, isPartialWalName, isWalSegmentName } from 'pg-replication/wal';
import type { Catalog } from '../catalog/index.js';
import { BarmantsError } from '../errors/index.js';
import { type Codec, CODECS, codecSuffix, createDecompressor } from '../repository/codec.js';
import type { ServerLayout } from '../repository/layout.js';

export interface WalFileLocation {
  /** the name asked for */
  name: string;
  path: string;
  codec: Codec;
  /** where it was found */
  source: 'catalog' | 'wals' | 'streaming' | 'partial';
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Where the file named `name` is stored, or null. */
export async function locateWal(
  layout: ServerLayout,
  catalog: Catalog | null,
  name: string,
  opts: { partial?: boolean } = {},
): Promise<WalFileLocation | null> {
  if (isHistoryFileName(name)) {
    const path = layout.walFilePath(name, 'none');
    return (await exists(path)) ? { name, path, codec: 'none', source: 'wals' } : null;
  }
  const isPartial = isPartialWalName(name);
  if (!isWalSegmentName(name) && !isPartial) {
    throw new BarmantsError('usage', `'${name}' is not a WAL file name (segment, .partial or .history)`);
  }
  const segName = isPartial ? name.slice(0, 24) : name;
  if (!isPartial) {
    const rec = catalog?.getWalSegment(layout.server, name) ?? null;
    if (rec) {
      const codec = (rec.compression ?? 'none') as Codec;
      const path = layout.walFilePath(name, codec);
      if (await exists(path)) return { name, path, codec, source: 'catalog' };
    }
    // The catalog may lag behind the files (or be rebuilt): the files are the truth.
    for (const codec of CODECS) {
      const path = layout.walFilePath(name, codec);
      if (await exists(path)) return { name, path, codec, source: 'wals' };
    }
  }
  if (opts.partial || isPartial) {
    // The segment being received, zero-padded, as pg_receivewal leaves it: recovery stops at its end.
    const streaming = layout.partialPath(segName);
    if (await exists(streaming)) return { name, path: streaming, codec: 'none', source: 'streaming' };
    const complete = `${layout.streamingDir}/${segName}`;
    if (await exists(complete)) return { name, path: complete, codec: 'none', source: 'streaming' };
    for (const codec of CODECS) {
      const path = `${layout.walDirFor(segName)}/${segName}.partial${codecSuffix(codec)}`;
      if (await exists(path)) return { name, path, codec, source: 'partial' };
    }
  }
  return null;
}

/** The decompressed content of a WAL file as a stream, or null when it is not in the repository. */
export async function getWal(
  layout: ServerLayout,
  catalog: Catalog | null,
  name: string,
  opts: { partial?: boolean } = {},
): Promise<(WalFileLocation & { stream: Readable }) | null> {
  const loc = await locateWal(layout, catalog, name, opts);
  if (!loc) return null;
  const raw = createReadStream(loc.path, { highWaterMark: 1 << 20 });
  const stream = loc.codec === 'none' ? raw : raw.pipe(createDecompressor(loc.codec));
  if (loc.codec !== 'none') raw.on('error', (err) => stream.destroy(err));
  return { ...loc, stream };
}

/** The decompressed content of a WAL file in memory (tests, small files), or null. */
export async function readWal(
  layout: ServerLayout,
  catalog: Catalog | null,
  name: string,
  opts: { partial?: boolean } = {},
): Promise<Buffer | null> {
  const got = await getWal(layout, catalog, name, opts);
  if (!got) return null;
  const chunks: Buffer[] = [];
  for await (const c of got.stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Names of the files in `streaming/` (segments received, complete or not). */
export async function listStreamingDir(layout: ServerLayout): Promise<string[]> {
  try {
    return (await readdir(layout.streamingDir)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
