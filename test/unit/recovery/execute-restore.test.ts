// The restore engine on synthetic backups: every codec, modes, corrupted file named and DEST left
// marked incomplete, delta (rewrite differing, remove extra), symlink escapes refused.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile, appendFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBackup, sampleFiles } from '../../integration/recovery/fixture.js';
import { readMembers, readStoredBackupInfo, checkMemberPath } from '../../../packages/barmants/src/recovery/backup-files.js';
import { restoreMembers, markIncomplete, INCOMPLETE_MARKER, type RestoreOptions } from '../../../packages/barmants/src/recovery/restore.js';
import { linkTablespaces, placeTablespaces, rewriteTablespaceMap, parseTablespaceOption } from '../../../packages/barmants/src/recovery/tablespaces.js';
import { BarmantsError } from '../../../packages/barmants/src/errors/index.js';
import { codecSuffix, compressWhole, decompressWhole, type Codec } from '../../../packages/barmants/src/repository/index.js';

let tmp: string;
before(async () => { tmp = await mkdtemp(join(tmpdir(), 'barmants-restore-')); });
after(async () => { await rm(tmp, { recursive: true, force: true }); });

async function setup(codec: Codec, name: string, withTs = false, checksum: 'blake3' | 'sha256' = 'blake3') {
  const backupDir = join(tmp, name, 'backup');
  await buildBackup(backupDir, {
    codec,
    checksum,
    files: sampleFiles(withTs),
    tablespaces: withTs ? [{ name: 'ts1', oid: 16400, location: '/srv/orig/ts1' }] : [],
  });
  const dest = join(tmp, name, 'dest');
  await mkdir(dest, { mode: 0o700 });
  const info = await readStoredBackupInfo(backupDir);
  const members = await readMembers(backupDir);
  return { backupDir, dest, info, members };
}

function opts(s: Awaited<ReturnType<typeof setup>>, over: Partial<RestoreOptions> = {}): RestoreOptions {
  return { backupDir: s.backupDir, codec: s.info.codec, members: s.members, dest: s.dest, tablespaceLocations: new Map(), jobs: 4, delta: false, ...over };
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('restoreMembers', () => {
  // Backups taken before BLAKE3 carry SHA-256 checksums: both still restore, with every codec.
  for (const [codec, checksum] of [['none', 'blake3'], ['gzip', 'blake3'], ['lz4', 'blake3'], ['zstd', 'blake3'], ['none', 'sha256'], ['gzip', 'sha256'], ['zstd', 'sha256']] as const) {
    test(`restores every member with codec ${codec} (${checksum}), 0700/0600, without postmaster.pid`, async () => {
      const s = await setup(codec, `codec-${codec}-${checksum}`, false, checksum);
      const progress: number[] = [];
      const sum = await restoreMembers(opts(s, { onProgress: (p) => progress.push(p.bytesDone) }));
      for (const f of sampleFiles()) {
        const p = join(s.dest, f.path);
        if (f.path.startsWith('postmaster.')) {
          await assert.rejects(lstat(p));
          continue;
        }
        const st = await lstat(p);
        if (f.type === 'dir') {
          assert.ok(st.isDirectory());
          assert.equal(st.mode & 0o777, 0o700);
        } else {
          assert.equal(st.mode & 0o777, 0o600, f.path);
          const want = typeof f.content === 'string' ? Buffer.from(f.content) : f.content!;
          assert.equal(sha(await readFile(p)), sha(want), f.path);
        }
      }
      assert.equal((await stat(join(s.dest, 'base'))).mode & 0o777, 0o700);
      assert.equal(sum.files, sampleFiles().filter((f) => (f.type ?? 'file') === 'file').length - 2);
      assert.ok(progress.length > 0);
    });
  }

  test('a corrupted stored file stops the restore and is named', async () => {
    const s = await setup('none', 'corrupt');
    await appendFile(join(s.backupDir, 'data', 'base/5/16384'), 'x');
    await markIncomplete(s.dest, 'test');
    await assert.rejects(restoreMembers(opts(s)), (e: unknown) => {
      assert.ok(e instanceof BarmantsError);
      assert.equal(e.kind, 'integrity');
      assert.match(e.message, /base\/5\/16384/);
      assert.match(e.hint, new RegExp(INCOMPLETE_MARKER));
      return true;
    });
    assert.ok((await readdir(s.dest)).includes(INCOMPLETE_MARKER));
  });

  for (const [codec, checksum] of [['none', 'blake3'], ['lz4', 'blake3'], ['gzip', 'sha256'], ['zstd', 'sha256']] as const) {
    test(`a flipped byte (same size) fails the ${checksum} check, ${codec}`, async () => {
      const s = await setup(codec, `flip-${codec}-${checksum}`, false, checksum);
      const p = join(s.backupDir, 'data', `base/5/16384${codecSuffix(codec)}`);
      // Rewrite the stored file with one byte of its content changed, compressed again.
      const content = decompressWhole(codec, await readFile(p));
      content[100] ^= 0x01;
      await writeFile(p, compressWhole(codec, content));
      await assert.rejects(restoreMembers(opts(s)), (e: unknown) => {
        assert.ok(e instanceof BarmantsError);
        assert.equal(e.kind, 'integrity');
        assert.match(e.message, new RegExp(`base/5/16384.*checksum mismatch: ${checksum} [0-9a-f]{64}`));
        return true;
      });
    });
  }

  test('a corrupted compressed file is named too', async () => {
    const s = await setup('gzip', 'corrupt-gz');
    const p = join(s.backupDir, 'data', 'base/1/1259.gz');
    const b = await readFile(p);
    b[b.length - 6] ^= 0xff;
    await writeFile(p, b);
    await assert.rejects(restoreMembers(opts(s)), /base\/1\/1259/);
  });

  for (const checksum of ['blake3', 'sha256'] as const) test(`delta rewrites only differing files and removes extras (${checksum})`, async () => {
    const s = await setup('zstd', `delta-${checksum}`, false, checksum);
    await restoreMembers(opts(s));
    await writeFile(join(s.dest, 'base/1/1259'), 'changed');
    await writeFile(join(s.dest, 'base/5/extra'), 'not in backup');
    await mkdir(join(s.dest, 'junkdir/sub'), { recursive: true });
    await markIncomplete(s.dest, 'test');
    const sum = await restoreMembers(opts(s, { delta: true }));
    assert.equal(sum.files, 1);
    assert.equal(sum.removed, 2);
    assert.ok(sum.unchanged >= 5);
    assert.equal((await readFile(join(s.dest, 'base/1/1259'))).length, 3 * 8192 + 17);
    await assert.rejects(lstat(join(s.dest, 'base/5/extra')));
    await assert.rejects(lstat(join(s.dest, 'junkdir')));
    assert.ok((await readdir(s.dest)).includes(INCOMPLETE_MARKER), 'the marker survives a delta pass');
  });

  test('a symlink planted in DEST is never written through', async () => {
    const s = await setup('none', 'symlink');
    const outside = join(tmp, 'symlink', 'outside');
    await mkdir(outside);
    await symlink(outside, join(s.dest, 'base'));
    await assert.rejects(restoreMembers(opts(s)), (e: unknown) => e instanceof BarmantsError && e.kind === 'unsafe');
    assert.deepEqual(await readdir(outside), []);
    // delta replaces the link by a real directory instead of following it
    await restoreMembers(opts(s, { delta: true }));
    assert.ok((await lstat(join(s.dest, 'base'))).isDirectory());
    assert.deepEqual(await readdir(outside), []);
  });

  test('a file-level symlink in DEST is not followed by delta', async () => {
    const s = await setup('none', 'symlink-file');
    await restoreMembers(opts(s));
    const victim = join(tmp, 'symlink-file', 'victim');
    await writeFile(victim, 'precious');
    await rm(join(s.dest, 'PG_VERSION'));
    await symlink(victim, join(s.dest, 'PG_VERSION'));
    await restoreMembers(opts(s, { delta: true }));
    assert.equal(await readFile(victim, 'utf8'), 'precious');
    assert.equal(await readFile(join(s.dest, 'PG_VERSION'), 'utf8'), '16\n');
  });

  test('member paths with .. or absolute are refused', () => {
    for (const p of ['../x', 'a/../../x', '/etc/passwd', 'a//b', './a', 'a/.', '']) {
      assert.throws(() => checkMemberPath(p), BarmantsError, p);
    }
    checkMemberPath('base/5/1259');
  });

  test('tablespaces are relocated: files, pg_tblspc link, tablespace_map', async () => {
    const s = await setup('lz4', 'ts', true);
    const [name, path] = parseTablespaceOption(`ts1:${join(tmp, 'ts', 'newts')}`);
    const placements = placeTablespaces(s.info.tablespaces, new Map([[name, path]]));
    await restoreMembers(opts(s, { tablespaceLocations: new Map(placements.map((p) => [p.oid, p.target])) }));
    const r = await linkTablespaces(s.dest, placements);
    assert.ok(r.mapRewritten);
    assert.equal(await readlink(join(s.dest, 'pg_tblspc/16400')), path);
    assert.equal(await readFile(join(s.dest, 'tablespace_map'), 'utf8'), `16400 ${path}\n`);
    assert.equal((await readFile(join(path, 'PG_16_202307071/5/16401'))).length, 8192);
    assert.throws(() => placeTablespaces(s.info.tablespaces, new Map([['nope', '/x']])), /no tablespace named "nope"/);
  });

  test('tablespace_map escaping', () => {
    assert.equal(rewriteTablespaceMap('1 /a\n2 /b\n', [{ name: 'x', oid: 2, location: '/b', target: '/new\\dir', relocated: true }]), '1 /a\n2 /new\\\\dir\n');
    assert.throws(() => parseTablespaceOption('ts1:relative'), /absolute/);
  });
});
