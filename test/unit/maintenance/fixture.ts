// A synthetic repository for maintenance tests: a temp barmants_home with a config file, a catalog,
// fake backup directories (backup.info only) and fake WAL segments with real checksums.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { writeBackupInfo } from '../../../packages/barmants/src/backup/index.js';
import { Catalog, type BackupRecord, type NewBackupRecord } from '../../../packages/barmants/src/catalog/index.js';
import { loadConfig, type Config, type ServerConfig } from '../../../packages/barmants/src/config/index.js';
import { catalogPath, ServerLayout } from '../../../packages/barmants/src/repository/index.js';

export const SEG = 16 * 1024 * 1024;
export const wal = (n: number, tli = 1): string =>
  `${tli.toString(16).toUpperCase().padStart(8, '0')}00000000${n.toString(16).toUpperCase().padStart(8, '0')}`;

export interface Repo {
  home: string;
  config: Config;
  server: ServerConfig;
  layout: ServerLayout;
  catalog: Catalog;
  addBackup(rec: Omit<NewBackupRecord, 'server'>): Promise<BackupRecord>;
  /** an uncompressed segment file + its catalog row; returns the content */
  addSegment(n: number, opts?: { bytes?: number; checksum?: string }): Promise<Buffer>;
  cleanup(): Promise<void>;
}

export async function makeRepo(options: Record<string, string> = {}): Promise<Repo> {
  const home = await mkdtemp(join(tmpdir(), 'barmants-maint-'));
  const lines = ['[barmants]', `barmants_home = ${home}`, '', '[pg]', 'conninfo = host=127.0.0.1 user=postgres dbname=postgres'];
  for (const [k, v] of Object.entries(options)) lines.push(`${k} = ${v}`);
  const path = join(home, 'barmants.conf');
  await writeFile(path, lines.join('\n') + '\n');
  const config = loadConfig({ path });
  const server = config.servers.get('pg')!;
  const layout = new ServerLayout(home, 'pg', server.backupDirectory);
  await layout.ensure();
  const catalog = Catalog.open(catalogPath(home));
  catalog.upsertServer({ name: 'pg', systemId: '1', pgVersion: 160000, walSegmentSize: SEG });
  return {
    home, config, server, layout, catalog,
    async addBackup(rec) {
      const r = catalog.insertBackup({ server: 'pg', walSegmentSize: SEG, timeline: 1, ...rec });
      await mkdir(layout.backupDir(r.backupId), { recursive: true });
      await writeBackupInfo(layout, r);
      return r;
    },
    async addSegment(n, opts = {}) {
      const name = wal(n);
      // Compressible: mostly zeros, as real WAL tails are.
      const content = Buffer.concat([randomBytes(512), Buffer.alloc((opts.bytes ?? 65536) - 512)]);
      const file = layout.walFilePath(name, 'none');
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, content);
      catalog.addWalSegment({
        server: 'pg', timeline: 1, segno: BigInt(n), name, size: content.length, storedSize: content.length, compression: null,
        checksum: opts.checksum ?? createHash('sha256').update(content).digest('hex'), archivedAt: new Date().toISOString(),
      });
      return content;
    },
    async cleanup() {
      catalog.close();
      await rm(home, { recursive: true, force: true });
    },
  };
}
