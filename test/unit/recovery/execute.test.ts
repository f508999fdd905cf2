// recover() end to end on a synthetic repository (catalog + stored backup + WAL, no PostgreSQL):
// WAL copied only up to an LSN target, the .partial included for "end", the configuration written,
// the marker removed, and every refusal leaving DEST untouched.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Catalog } from '../../../packages/barmants/src/catalog/index.js';
import { recover, renderRecoverText, INCOMPLETE_MARKER, type RecoverEnv, type RecoverOptions } from '../../../packages/barmants/src/recovery/index.js';
import { BarmantsError } from '../../../packages/barmants/src/errors/index.js';
import { buildRepository, segName } from '../../integration/recovery/fixture.js';

let tmp: string;
let env: RecoverEnv;
let catalog: Catalog;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'barmants-recover-'));
  ({ env, catalog } = await buildRepository(join(tmp, 'home')));
});
after(async () => {
  catalog.close();
  await rm(tmp, { recursive: true, force: true });
});

const opts = (dest: string, over: Partial<RecoverOptions> = {}): RecoverOptions => ({ server: 'pg', backupRef: 'latest', dest, jobs: 2, ...over });

describe('recover()', () => {
  test('to the end: all WAL plus the .partial under its segment name, config written, marker gone', async () => {
    const dest = join(tmp, 'd-end');
    const r = await recover(env, opts(dest));
    const wal = (await readdir(join(dest, 'barmants_wal'))).sort();
    assert.deepEqual(wal, [5, 6, 7, 8, 9, 10].map(segName));
    assert.equal(r.wal.partial_included, true);
    assert.ok(!(await readdir(dest)).includes(INCOMPLETE_MARKER));
    assert.ok((await readdir(dest)).includes('recovery.signal'));
    assert.ok(!(await readdir(dest)).includes('postmaster.pid'));
    const auto = await readFile(join(dest, 'postgresql.auto.conf'), 'utf8');
    assert.match(auto, new RegExp(`^restore_command = 'cp ${dest}/barmants_wal/%f %p'$`, 'm'));
    assert.match(auto, /^#BARMANTS# restore_command = 'old'$/m);
    assert.match(auto, /^archive_command = 'false'$/m);
    assert.match(auto, /^recovery_target_timeline = '1'$/m);
    assert.equal((await stat(dest)).mode & 0o777, 0o700);
    assert.deepEqual(r.modified_settings.map((m) => m.name), ['archive_command', 'restore_command']);
    assert.deepEqual(r.dangerous_settings.map((m) => m.name), ['hba_file']);
    const text = renderRecoverText(r).join('\n');
    assert.match(text, /These settings have been modified to prevent data losses/);
    assert.match(text, /postgresql.conf line 3: hba_file/);
  });

  test('an LSN target copies WAL only up to the target segment', async () => {
    const dest = join(tmp, 'd-lsn');
    const r = await recover(env, opts(dest, { targetLsn: '0/700010', targetAction: 'promote', exclusive: true }));
    assert.deepEqual((await readdir(join(dest, 'barmants_wal'))).sort(), [5, 6, 7].map(segName));
    const auto = await readFile(join(dest, 'postgresql.auto.conf'), 'utf8');
    assert.match(auto, /^recovery_target_lsn = '0\/700010'$/m);
    assert.match(auto, /^recovery_target_inclusive = 'false'$/m);
    assert.match(auto, /^recovery_target_action = 'promote'$/m);
    assert.equal(r.wal.partial_included, false);
  });

  test('immediate and get-wal: no WAL copied, get-wal restore_command', async () => {
    const dest = join(tmp, 'd-getwal');
    await recover(env, opts(dest, { targetImmediate: true, getWal: true, barmantsPath: '/usr/bin/barmants' }));
    assert.ok(!(await readdir(dest)).includes('barmants_wal'));
    const auto = await readFile(join(dest, 'postgresql.auto.conf'), 'utf8');
    assert.match(auto, /^restore_command = '\/usr\/bin\/barmants -c \/etc\/barmants.conf -q get-wal -P pg %f > %p'$/m);
    assert.match(auto, /^recovery_target = 'immediate'$/m);
  });

  test('standby mode: standby.signal, timeline latest', async () => {
    const dest = join(tmp, 'd-standby');
    await recover(env, opts(dest, { standbyMode: true }));
    assert.ok((await readdir(dest)).includes('standby.signal'));
    assert.match(await readFile(join(dest, 'postgresql.auto.conf'), 'utf8'), /^recovery_target_timeline = 'latest'$/m);
  });

  test('dry run writes nothing', async () => {
    const dest = join(tmp, 'd-dry');
    const r = await recover(env, opts(dest, { dryRun: true, targetTime: '2026-11-27 12:00:00' }));
    assert.equal(r.dry_run, true);
    assert.ok(r.warnings.some((w) => /Europe\/Paris/.test(w)));
    await assert.rejects(stat(dest));
  });

  const refuses = (kind: string, re: RegExp) => (e: unknown): boolean => {
    assert.ok(e instanceof BarmantsError, String(e));
    assert.equal(e.kind, kind);
    assert.match(`${e.message} ${e.hint}`, re);
    return true;
  };

  test('refusals change nothing: non-empty DEST, live postmaster.pid, bad target, two targets, bad --jobs', async () => {
    const dest = join(tmp, 'd-refuse');
    await mkdir(dest);
    await writeFile(join(dest, 'somefile'), 'x');
    await assert.rejects(recover(env, opts(dest)), refuses('unsafe', /not empty.*--delta/));
    await writeFile(join(dest, 'postmaster.pid'), `${process.pid}\n/x\n`);
    await assert.rejects(recover(env, opts(dest, { delta: true })), refuses('unsafe', /running PostgreSQL/));
    await rm(join(dest, 'postmaster.pid'));
    await assert.rejects(recover(env, opts(dest, { targetTime: '2020-01-01 00:00:00+00' })), refuses('usage', /before the end of backup/));
    await assert.rejects(recover(env, opts(dest, { targetXid: '800', targetName: 'x' })), refuses('usage', /only one recovery target/));
    await assert.rejects(recover(env, opts(dest, { targetAction: 'promote' })), refuses('usage', /needs a recovery target/));
    await assert.rejects(recover(env, opts(dest, { tablespaces: ['nope:/x'] })), refuses('usage', /no tablespace named/));
    await assert.rejects(recover(env, opts(join(tmp, 'home', 'inside'))), refuses('unsafe', /overlaps the barmants repository/));
    for (const jobs of [0, 1.5, Number.NaN]) {
      await assert.rejects(recover(env, opts(dest, { delta: true, jobs })), refuses('usage', /--jobs .*expected a whole number/));
    }
    assert.deepEqual(await readdir(dest), ['somefile']);
  });

  test('a WAL gap is refused before anything is written', async () => {
    const name = segName(8);
    const rec = catalog.getWalSegment('pg', name)!;
    catalog.deleteWalSegments('pg', [name]);
    const dest = join(tmp, 'd-gap');
    try {
      await assert.rejects(recover(env, opts(dest)), refuses('gap', /000000010000000000000008/));
      await assert.rejects(stat(dest));
    } finally {
      catalog.addWalSegment(rec);
    }
  });

  test('a damaged archived WAL segment stops the restore, named, DEST left marked incomplete', async () => {
    // Copied by the restore's workers while they restore the files: the error must come back whole.
    const own = await buildRepository(join(tmp, 'home-badwal'));
    try {
      const path = own.layout.walFilePath(segName(7), 'none');
      const bytes = await readFile(path);
      bytes[1000] ^= 0xff;
      await writeFile(path, bytes);
      const dest = join(tmp, 'd-badwal');
      await assert.rejects(recover(own.env, opts(dest)), (e: unknown) => {
        assert.ok(e instanceof BarmantsError);
        assert.equal(e.kind, 'integrity');
        assert.match(e.message, /WAL file 000000010000000000000007 does not match its checksum/);
        assert.match(e.hint, /verify-backup/);
        return true;
      });
      assert.ok((await readdir(dest)).includes(INCOMPLETE_MARKER));
    } finally {
      own.catalog.close();
    }
  });

  test('delta over an earlier, interrupted restore finishes it', async () => {
    const dest = join(tmp, 'd-delta');
    await recover(env, opts(dest));
    await writeFile(join(dest, INCOMPLETE_MARKER), 'interrupted');
    await writeFile(join(dest, 'base/1/1259'), 'torn');
    await rm(join(dest, 'barmants_wal'), { recursive: true });
    const r = await recover(env, opts(dest, { delta: true }));
    assert.equal(r.restore!.files, 3); // base/1/1259 and the two conf files barmants rewrote
    assert.ok(!(await readdir(dest)).includes(INCOMPLETE_MARKER));
    assert.equal((await readFile(join(dest, 'base/1/1259'))).length, 3 * 8192 + 17);
  });
});
