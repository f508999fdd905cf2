// Restore throughput on a synthetic backup (not a test: run by hand).
// node --import tsx test/integration/recovery/bench-restore.ts <dir> <MB> <codec> <jobs...>
import { mkdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { buildBackup, type FixtureFile } from './fixture.js';
import { readMembers, readStoredBackupInfo } from '../../../packages/barmants/src/recovery/backup-files.js';
import { restoreMembers } from '../../../packages/barmants/src/recovery/restore.js';
import type { Codec } from '../../../packages/barmants/src/repository/index.js';

const [dir, mbText, codec, ...jobsList] = process.argv.slice(2);
const mb = Number(mbText);
const backupDir = join(dir!, `backup-${codec}-${mb}`);
if (!existsSync(join(backupDir, 'files.jsonl'))) {
  const files: FixtureFile[] = [];
  const fileSize = 8 << 20;
  // pgbench-like pages: half random, half repeated, so codecs get ~2:1
  for (let i = 0; i < Math.ceil((mb << 20) / fileSize); i++) {
    const b = Buffer.alloc(fileSize);
    for (let off = 0; off < fileSize; off += 8192) randomBytes(4096).copy(b, off);
    files.push({ path: `base/5/${16384 + i}`, content: b });
  }
  await buildBackup(backupDir, { codec: codec as Codec, files });
}
const info = await readStoredBackupInfo(backupDir);
const members = await readMembers(backupDir);
for (const j of jobsList.length ? jobsList : ['1', '4']) {
  const dest = join(dir!, `dest-${codec}`);
  await rm(dest, { recursive: true, force: true });
  await mkdir(dest);
  const t = process.hrtime.bigint();
  const s = await restoreMembers({ backupDir, codec: info.codec, members, dest, tablespaceLocations: new Map(), jobs: Number(j), delta: false });
  const sec = Number(process.hrtime.bigint() - t) / 1e9;
  console.log(`codec=${codec} jobs=${j} ${(s.bytes / 1048576).toFixed(0)} MiB in ${sec.toFixed(2)} s: ${(s.bytes / 1048576 / sec).toFixed(0)} MiB/s`);
  await rm(dest, { recursive: true, force: true });
}
