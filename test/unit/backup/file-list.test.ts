// files.jsonl: a file entry carries a BLAKE3 (current) or SHA-256 (older backups) checksum, and
// an entry without one is refused with its line, since nothing could verify that file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileChecksum, readFileListAt, type FileEntry } from '../../../packages/barmants/src/backup/info.js';
import { BarmantsError } from '../../../packages/barmants/src/errors/index.js';

const hex = (c: string): string => c.repeat(64);
const entry = (over: Record<string, unknown>): string =>
  JSON.stringify({ ts: null, path: 'base/1/1259', type: 'file', size: 3, mode: 384, mtime: null, stored: 3, link: null, reused: false, ...over });

async function read(lines: string[]): Promise<FileEntry[]> {
  const dir = await mkdtemp(join(tmpdir(), 'barmants-list-'));
  try {
    await writeFile(join(dir, 'files.jsonl'), lines.join('\n') + '\n');
    const out: FileEntry[] = [];
    for await (const e of readFileListAt(dir)) out.push(e);
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('blake3 and sha256 entries are read with their algorithm; directories have none', async () => {
  const got = await read([
    JSON.stringify({ ts: null, path: 'base', type: 'dir', size: 0, mode: 448, mtime: null, stored: 0, link: null, reused: false }),
    JSON.stringify({ ts: null, path: 'global', type: 'dir', size: 0, mode: 448, mtime: null, sha256: null, stored: 0, link: null, reused: false }),
    entry({ blake3: hex('a') }),
    entry({ path: 'base/1/1260', sha256: hex('b') }),
  ]);
  assert.deepEqual(got.map(fileChecksum), [null, null, { alg: 'blake3', hex: hex('a') }, { alg: 'sha256', hex: hex('b') }]);
});

test('a file without a usable checksum is refused, naming the line', async () => {
  for (const bad of [{}, { blake3: null }, { sha256: 'abc' }, { blake3: hex('A') }]) {
    await assert.rejects(read([entry({ blake3: hex('a') }), entry(bad)]), (e: unknown) => {
      assert.ok(e instanceof BarmantsError);
      assert.equal(e.kind, 'integrity');
      assert.match(e.message, /files\.jsonl:2: file base\/1\/1259 has no blake3 or sha256 checksum/);
      return true;
    });
  }
});
