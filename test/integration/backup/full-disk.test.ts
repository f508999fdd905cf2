/*
 * A base backup into a server directory on a small tmpfs that fills up mid-copy: the backup fails
 * with the file system's error, is recorded FAILED with that reason (never DONE, never a backup
 * that looks usable), and leaves no temporary file behind; once space is back (the tmpfs grown),
 * the next backup is DONE and verifies, and the failed one can be deleted. Needs root to mount the
 * tmpfs; skipped, saying so, where mounting is not permitted.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { generateLoad, useCluster, versionsUnderTest } from '../../harness/index.js';
import { barmants, writeTestConfig, type TestConfig } from '../../helpers/config.js';
import { mountTmpfs, resizeTmpfs, unmountTmpfs, type Tmpfs } from '../../helpers/tmpfs.js';

const version = versionsUnderTest()[0]!;

/** Every path under `dir` (relative), directories included. */
async function walk(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    out.push(p);
    if (e.isDirectory()) out.push(...(await walk(dir, p)));
  }
  return out;
}

describe(`base backup on a full disk (PostgreSQL ${version})`, () => {
  const cluster = useCluster({ version, name: `backupfull${version}` });
  let mnt: Tmpfs | undefined;
  let cfg: TestConfig | undefined;
  before(async () => {
    // Smaller than the cluster (an initdb'd cluster alone is over 20 MB; the load adds more).
    mnt = await mountTmpfs(12, 'barmants-backupfull-');
  });
  after(async () => {
    await cfg?.cleanup();
    await unmountTmpfs(mnt);
  });

  test('fails with the reason, recorded FAILED, no temporary file left; works once space is back', async (t) => {
    if (!mnt || 'skip' in mnt) return t.skip(mnt?.skip);
    const dir = mnt.dir;
    await generateLoad(cluster(), { rows: 60_000 });
    cfg = await writeTestConfig(cluster(), { options: { backup_directory: join(dir, 'pg'), backup_compression: 'none' } });

    const r = await barmants(cfg, ['backup', 'pg']);
    assert.notEqual(r.code, 0, 'a backup that did not fit must fail');
    // The error says what failed and where, and the hint what to do: not "a bug in barmants".
    assert.equal(r.code, 10, `exit status of an I/O error: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`cannot write backup \\d{8}T\\d{6} into ${dir}/pg/base/.*no space left on device`, 'i'), r.stderr);
    assert.match(r.stderr, new RegExp(`HINT: free space on the file system holding ${dir}/pg \\(df -h\\), then run the backup again`), r.stderr);
    console.log(`backup on a full disk: ${r.stderr.trim().split('\n').slice(-2).join(' / ')}`);
    const list = JSON.parse((await barmants(cfg, ['-f', 'json', 'list-backups', 'pg'])).stdout).pg as Array<{ backup_id: string; status: string }>;
    assert.equal(list.length, 1);
    assert.equal(list[0]!.status, 'FAILED');
    const failedId = list[0]!.backup_id;
    const show = JSON.parse((await barmants(cfg, ['-f', 'json', 'show-backup', 'pg', failedId])).stdout);
    assert.match(String(show.error), /ENOSPC|no space left/i, 'the reason is recorded');
    const leftovers = (await walk(join(dir, 'pg'))).filter((p) => p.endsWith('.tmp'));
    assert.deepEqual(leftovers, [], 'no temporary file is left on the full file system');
    assert.equal((await barmants(cfg, ['recover', 'pg', failedId, join(dir, 'never')])).code === 0, false, 'a FAILED backup is not restorable');

    await resizeTmpfs(dir, 400);
    const ok = await barmants(cfg, ['backup', 'pg', '--wal']);
    assert.equal(ok.code, 0, ok.stderr);
    const v = await barmants(cfg, ['verify-backup', 'pg', 'latest']);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const del = await barmants(cfg, ['delete', 'pg', failedId]);
    assert.equal(del.code, 0, del.stderr);
    const after = JSON.parse((await barmants(cfg, ['-f', 'json', 'list-backups', 'pg'])).stdout).pg as Array<{ status: string }>;
    assert.deepEqual(after.map((b) => b.status), ['DONE']);
  });
});
