// Durable writes and the repository layout: no tmp left behind, modes 0600/0700, atomic replace.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readdir, readFile, rm, stat, writeFile, chmod, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DurableWriter, ServerLayout, TmpFile, catalogPath, linkDurable, makeTreeDurable, removeDurable, renameDurable, syncfsReportsErrors, writeAll,
  writeAllSync, writeFileDurable,
} from '../../../packages/barmants/src/repository/index.js';

let dir: string;
before(async () => { dir = await mkdtemp(join(tmpdir(), 'barmants-durable-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

describe('DurableWriter', () => {
  test('commit: file in place, 0600, no tmp, byte count', async () => {
    const p = join(dir, 'a');
    const w = await DurableWriter.open(p);
    await w.write(Buffer.from('hello '));
    await w.write(Buffer.from('world'));
    assert.equal(await w.commit(), 11);
    assert.equal(await readFile(p, 'utf8'), 'hello world');
    assert.equal((await stat(p)).mode & 0o777, 0o600);
    assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.tmp')), []);
    await assert.rejects(w.write(Buffer.from('x')));
  });
  test('abort: nothing left, previous version untouched', async () => {
    const p = join(dir, 'b');
    await writeFileDurable(p, 'v1');
    const w = await DurableWriter.open(p);
    await w.write(Buffer.from('partial'));
    await w.abort();
    await w.abort();
    assert.equal(await readFile(p, 'utf8'), 'v1');
    assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.tmp')), []);
  });
  test('a leftover tmp with a loose mode is overwritten with 0600', async () => {
    const p = join(dir, 'c');
    await writeFile(p + '.tmp', 'garbage from a crash, much longer than the new content');
    await chmod(p + '.tmp', 0o644);
    await writeFileDurable(p, 'new');
    assert.equal(await readFile(p, 'utf8'), 'new');
    assert.equal((await stat(p)).mode & 0o777, 0o600);
  });
  test('remove, rename, link', async () => {
    const a = join(dir, 'd1');
    await writeFileDurable(a, 'x');
    await mkdir(join(dir, 'sub'));
    await renameDurable(a, join(dir, 'sub', 'd2'));
    await linkDurable(join(dir, 'sub', 'd2'), join(dir, 'd3'));
    assert.equal((await stat(join(dir, 'd3'))).ino, (await stat(join(dir, 'sub', 'd2'))).ino);
    await removeDurable(join(dir, 'd3'));
    await removeDurable(join(dir, 'd3')); // missing is fine
    assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith('d')), []);
  });
});

describe('TmpFile', () => {
  test('commit: file in place, 0600 over a leftover tmp, no tmp, byte count', async () => {
    const p = join(dir, 't1');
    await writeFile(p + '.tmp', 'garbage from a crash, much longer than the new content');
    await chmod(p + '.tmp', 0o644);
    const f = TmpFile.open(p);
    f.write(Buffer.from('hello '));
    f.write(Buffer.from('world'));
    assert.equal(f.bytesWritten, 11);
    assert.equal(f.commit({ sync: true }), 11);
    assert.equal(f.isOpen, false);
    assert.equal(await readFile(p, 'utf8'), 'hello world');
    assert.equal((await stat(p)).mode & 0o777, 0o600);
    assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.tmp')), []);
    assert.throws(() => f.write(Buffer.from('x')), /already closed/);
  });
  test('abort: nothing left, previous version untouched, twice is fine', async () => {
    const p = join(dir, 't2');
    await writeFileDurable(p, 'v1');
    const f = TmpFile.open(p);
    f.write(Buffer.from('partial'));
    f.abort();
    f.abort();
    assert.equal(await readFile(p, 'utf8'), 'v1');
    assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.tmp')), []);
  });
  test('writeAll and writeAllSync: at a position, or at the file offset', async () => {
    const p = join(dir, 't3');
    const fh = await open(p, 'w+');
    try {
      await writeAll(fh, Buffer.from('abc'));
      await writeAll(fh, Buffer.from('def'));
      await writeAll(fh, Buffer.from('XY'), 1);
      writeAllSync(fh.fd, Buffer.from('Z'), 5);
      writeAllSync(fh.fd, Buffer.from('gh'));
    } finally {
      await fh.close();
    }
    assert.equal(await readFile(p, 'utf8'), 'aXYdeZgh');
  });
});

describe('ServerLayout', () => {
  test('paths', () => {
    const l = new ServerLayout('/h', 'pg');
    assert.equal(catalogPath('/h'), '/h/catalog.db');
    assert.equal(l.dir, '/h/pg');
    assert.equal(l.identityFile, '/h/pg/identity.json');
    assert.equal(l.backupDataDir('20240101T000000'), '/h/pg/base/20240101T000000/data');
    assert.equal(l.backupTablespaceDir('20240101T000000', 16384), '/h/pg/base/20240101T000000/tablespaces/16384');
    assert.equal(l.backupInfoFile('20240101T000000'), '/h/pg/base/20240101T000000/backup.info');
    assert.equal(l.backupManifestFile('20240101T000000'), '/h/pg/base/20240101T000000/backup_manifest');
    assert.equal(l.walFilePath('000000010000000A000000FF', 'zstd'), '/h/pg/wals/000000010000000A/000000010000000A000000FF.zst');
    assert.equal(l.walFilePath('000000010000000A000000FF', 'none'), '/h/pg/wals/000000010000000A/000000010000000A000000FF');
    assert.equal(l.walFilePath('00000002.history', 'gzip'), '/h/pg/wals/00000002.history');
    assert.equal(l.partialPath('000000010000000A000000FF'), '/h/pg/streaming/000000010000000A000000FF.partial');
    assert.equal(l.lockFile('receive-wal'), '/h/.locks/pg-receive-wal.lock');
    assert.equal(new ServerLayout('/h', 'pg', '/data/pg').walsDir, '/data/pg/wals');
    assert.throws(() => l.backupDir('../x'));
    assert.throws(() => new ServerLayout('/h', '../pg'));
  });
  test('ensure creates 0700 directories and repairs modes', async () => {
    const l = new ServerLayout(join(dir, 'home'), 'pg');
    await mkdir(l.dir, { recursive: true, mode: 0o755 });
    await chmod(l.dir, 0o755);
    await l.ensure();
    for (const d of [l.dir, l.baseDir, l.walsDir, l.streamingDir, l.errorsDir, join(dir, 'home', '.locks')]) {
      assert.equal((await stat(d)).mode & 0o777, 0o700, d);
    }
  });
});

describe('makeTreeDurable', () => {
  test('syncfs is used only where it reports write-back errors (Linux 5.8+)', () => {
    assert.equal(syncfsReportsErrors('6.1.0-18-amd64', 'linux'), true);
    assert.equal(syncfsReportsErrors('5.8.0', 'linux'), true);
    assert.equal(syncfsReportsErrors('5.4.0-150-generic', 'linux'), false);
    assert.equal(syncfsReportsErrors('4.19.0', 'linux'), false);
    assert.equal(syncfsReportsErrors('23.1.0', 'darwin'), false);
  });

  test('syncfs, fsync, and the fallback when sync -f fails', async () => {
    const root = join(dir, 'tree');
    await mkdir(join(root, 'a', 'b'), { recursive: true });
    await writeFile(join(root, 'a', 'b', 'f'), 'x');
    assert.equal(await makeTreeDurable(root, 'syncfs'), 'syncfs');
    assert.equal(await makeTreeDurable(root, 'fsync'), 'fsync');
    // sync -f on a missing path fails: the per-file way runs instead, and fails for what it is.
    const said: string[] = [];
    await assert.rejects(makeTreeDurable(join(dir, 'missing'), 'syncfs', (m) => said.push(m)), /ENOENT/);
    assert.match(said[0] ?? '', /sync -f .* failed .*one by one/);
  });
});
