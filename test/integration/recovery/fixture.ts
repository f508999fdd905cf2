// Synthetic stored backups in the REPOSITORY.md format (backup.info, files.jsonl, data/ and
// tablespaces/ with each codec), for restore tests that need no PostgreSQL.
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { createRequire } from 'node:module';
import { codecSuffix, createCompressor, ServerLayout, catalogPath, type Codec } from '../../../packages/barmants/src/repository/index.js';
import { Catalog } from '../../../packages/barmants/src/catalog/index.js';
import { createLogger } from '../../../packages/barmants/src/log/index.js';
import { BarmantsError } from '../../../packages/barmants/src/errors/index.js';
import type { Config, ServerConfig } from '../../../packages/barmants/src/config/index.js';
import type { RecoverEnv } from '../../../packages/barmants/src/recovery/index.js';

export interface FixtureFile {
  path: string;
  content?: Buffer | string;
  ts?: number | null;
  type?: 'file' | 'dir' | 'symlink';
  link?: string;
}

export interface FixtureOptions {
  backupId?: string;
  codec: Codec;
  files: FixtureFile[];
  tablespaces?: { name: string; oid: number; location: string }[];
  version?: number;
  pgdata?: string;
  /** the files' checksum: blake3 as barmants writes now (default), sha256 as backups taken before */
  checksum?: 'blake3' | 'sha256';
}

const { blake3 } = createRequire(import.meta.url)('@napi-rs/blake-hash') as { blake3: (b: Buffer) => Buffer };

/** Writes a DONE backup under `backupDir` and returns its member list as written. */
export async function buildBackup(backupDir: string, o: FixtureOptions): Promise<void> {
  const lines: string[] = [];
  const parents = new Set<string>();
  const alg = o.checksum ?? 'blake3';
  // Older backups wrote `sha256: null` on directories and symlinks; newer ones write no checksum key.
  const none = alg === 'sha256' ? { sha256: null } : {};
  await mkdir(join(backupDir, 'data'), { recursive: true });
  for (const f of o.files) {
    const ts = f.ts ?? null;
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const key = `${ts}:${parts.slice(0, i).join('/')}`;
      if (!parents.has(key)) {
        parents.add(key);
        lines.push(JSON.stringify({ ts, path: parts.slice(0, i).join('/'), type: 'dir', size: 0, mode: 448, mtime: 1795550833, ...none, stored: 0, link: null, reused: false }));
      }
    }
    const type = f.type ?? 'file';
    if (type === 'dir') {
      parents.add(`${ts}:${f.path}`);
      lines.push(JSON.stringify({ ts, path: f.path, type, size: 0, mode: 448, mtime: 1795550833, ...none, stored: 0, link: null, reused: false }));
      continue;
    }
    if (type === 'symlink') {
      lines.push(JSON.stringify({ ts, path: f.path, type, size: 0, mode: 511, mtime: 1795550833, ...none, stored: 0, link: f.link, reused: false }));
      continue;
    }
    const content = typeof f.content === 'string' ? Buffer.from(f.content) : (f.content ?? Buffer.alloc(0));
    const root = ts === null ? join(backupDir, 'data') : join(backupDir, 'tablespaces', String(ts));
    const stored = join(root, f.path) + codecSuffix(o.codec);
    await mkdir(dirname(stored), { recursive: true });
    await pipeline(Readable.from([content]), createCompressor(o.codec), createWriteStream(stored));
    lines.push(
      JSON.stringify({
        ts, path: f.path, type: 'file', size: content.length, mode: 384, mtime: 1795550833,
        [alg]: alg === 'sha256' ? createHash('sha256').update(content).digest('hex') : blake3(content).toString('hex'),
        stored: 0, link: null, reused: false,
      }),
    );
  }
  await writeFile(join(backupDir, 'files.jsonl'), lines.join('\n') + '\n');
  await writeFile(
    join(backupDir, 'backup.info'),
    JSON.stringify({
      format: 1, server: 'pg', backup_id: o.backupId ?? '20261127T101500', backup_name: null, status: 'DONE',
      begin_time: '2026-11-27T10:15:00.123+00:00', end_time: '2026-11-27T10:15:04.000+00:00',
      begin_lsn: '0/5000028', end_lsn: '0/6000100', begin_wal: '000000010000000000000005', end_wal: '000000010000000000000006',
      timeline: 1, systemid: '7311831194433320669', version: o.version ?? 160004, wal_segment_size: 16777216,
      server_timezone: 'UTC', pgdata: o.pgdata ?? '/var/lib/postgresql/16/main', tablespaces: o.tablespaces ?? [],
      compression: o.codec, size: 0, file_count: o.files.length,
    }),
  );
}

/** A small cluster-like tree: a few files in base/, global/, config files, a tablespace if asked. */
export function sampleFiles(withTablespace = false): FixtureFile[] {
  const files: FixtureFile[] = [
    { path: 'PG_VERSION', content: '16\n' },
    { path: 'backup_label', content: 'START WAL LOCATION: 0/5000028 (file 000000010000000000000005)\n' },
    { path: 'postgresql.conf', content: "port = 5432\narchive_command = 'cp %p /mnt/archive/%f'\nhba_file = '/etc/pg/hba.conf'\n" },
    { path: 'postgresql.auto.conf', content: "# Do not edit this file manually!\nrestore_command = 'old'\nwork_mem = '8MB'\n" },
    { path: 'postmaster.pid', content: '12345\n' },
    { path: 'postmaster.opts', content: '/usr/bin/postgres\n' },
    { path: 'global/pg_control', content: Buffer.alloc(8192, 7) },
    { path: 'base/1/1259', content: Buffer.alloc(3 * 8192 + 17, 1) },
    { path: 'base/5/16384', content: Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 31) & 0xff)) },
    { path: 'base/5/empty', content: '' },
    { path: 'pg_wal/archive_status', type: 'dir' },
    { path: 'pg_notify', type: 'dir' },
  ];
  if (withTablespace) {
    files.push({ path: 'tablespace_map', content: '16400 /srv/orig/ts1\n' });
    files.push({ path: 'PG_16_202307071/5/16401', content: Buffer.alloc(8192, 9), ts: 16400 });
  }
  return files;
}

export const SEG = 1 << 20; // 1 MiB segments keep the fixture small
export const segName = (segno: number): string => `00000001${'00000000'}${segno.toString(16).toUpperCase().padStart(8, '0')}`;

/**
 * A barmants home with server "pg": one DONE zstd backup (WAL 5..6), archived segments 5..9 and a
 * streaming .partial for 10, all in the catalog; and a RecoverEnv over it.
 */
export async function buildRepository(
  home: string,
  serverOver: Partial<ServerConfig> = {},
  o: { checksum?: FixtureOptions['checksum'] } = {},
): Promise<{ env: RecoverEnv; catalog: Catalog; layout: ServerLayout }> {
  const layout = new ServerLayout(home, 'pg');
  await layout.ensure();
  const catalog = Catalog.open(catalogPath(home));
  catalog.upsertServer({ name: 'pg', systemId: '7311831194433320669', pgVersion: 160004, walSegmentSize: SEG });
  const id = '20261127T101500';
  await buildBackup(layout.backupDir(id), { codec: 'zstd', files: sampleFiles(), ...(o.checksum ? { checksum: o.checksum } : {}) });
  const infoPath = layout.backupInfoFile(id);
  const info = JSON.parse(await readFile(infoPath, 'utf8'));
  Object.assign(info, { wal_segment_size: SEG, begin_lsn: '0/500028', end_lsn: '0/600100', begin_wal: segName(5), end_wal: segName(6) });
  await writeFile(infoPath, JSON.stringify(info));
  catalog.insertBackup({
    server: 'pg', backupId: id, status: 'DONE', beginTime: '2026-11-27T10:15:00.123+00:00', endTime: '2026-11-27T10:15:04.000+00:00',
    beginLsn: 0x500028n, endLsn: 0x600100n, beginWal: segName(5), endWal: segName(6), timeline: 1, pgVersion: 160004,
    systemId: '7311831194433320669', walSegmentSize: SEG, serverTimezone: 'Europe/Paris', compression: 'zstd',
  });
  for (let s = 5; s <= 9; s++) {
    const content = Buffer.alloc(SEG, s);
    const name = segName(s);
    await mkdir(layout.walDirFor(name), { recursive: true });
    await writeFile(layout.walFilePath(name, 'none'), content);
    catalog.addWalSegment({
      server: 'pg', timeline: 1, segno: BigInt(s), name, size: SEG, storedSize: SEG, compression: null,
      checksum: createHash('sha256').update(content).digest('hex'), archivedAt: new Date().toISOString(),
    });
  }
  await writeFile(layout.partialPath(segName(10)), Buffer.alloc(SEG, 10));
  const server = { name: 'pg', hooks: {}, recoveryOptions: [], sshKey: null, backupDirectory: null, ...serverOver } as unknown as ServerConfig;
  const env: RecoverEnv = {
    config: { files: ['/etc/barmants.conf'], global: { barmantsHome: home }, servers: new Map([['pg', server]]), warnings: [], notes: [] } as unknown as Config,
    logger: createLogger({ level: 'ERROR', console: false }),
    catalog: () => catalog,
    server: (n: string) => {
      if (n !== 'pg') throw new BarmantsError('notFound', `unknown server '${n}'`);
      return server;
    },
    layout: () => layout,
  };
  return { env, catalog, layout };
}
