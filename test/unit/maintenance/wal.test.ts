// WAL retention walked through the catalog a page at a time: what goes (rows and files), what
// stays (WAL from the oldest backup on, keep:standalone ranges), Barman's wal_delete hooks around
// each segment, and a 50,000-segment archive handled without listing it whole.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeUnneededWal } from '../../../packages/barmants/src/maintenance/index.js';
import { nullLogger } from '../../../packages/barmants/src/log/index.js';
import { makeRepo, SEG, wal, type Repo } from './fixture.js';

const backup = (id: string, begin: number, end: number, extra: Record<string, unknown> = {}) => ({
  backupId: id, beginTime: '2026-11-20T01:00:00+00:00', endTime: '2026-11-20T01:10:00+00:00', beginWal: wal(begin), endWal: wal(end), status: 'DONE' as const, ...extra,
});

/** A hook that appends its BARMAN_* environment as one JSON line to `out`, then exits `code`. */
async function hookScript(repo: Repo, name: string, out: string, code = 0): Promise<string> {
  const file = join(repo.home, `${name}.mjs`);
  await writeFile(
    file,
    `import { appendFileSync } from 'node:fs';
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('BARMAN_')));
appendFileSync(${JSON.stringify(out)}, JSON.stringify(env) + '\\n');
process.exit(${code});
`,
  );
  return `${process.execPath} ${file}`;
}

const lines = (file: string): Record<string, string>[] =>
  existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, string>) : [];

describe('removeUnneededWal (paged)', () => {
  const repos: Repo[] = [];
  after(async () => { for (const r of repos) await r.cleanup(); });

  test('removes what no backup needs in pages, rows and files; keeps WAL from the oldest backup and keep:standalone ranges', async () => {
    const repo = await makeRepo();
    repos.push(repo);
    await repo.addBackup(backup('20261101T010000', 3, 4, { keep: 'standalone' }));
    await repo.addBackup(backup('20261110T010000', 12, 13));
    await repo.addBackup(backup('20261112T010000', 15, 16, { status: 'FAILED' }));
    for (let n = 1; n <= 20; n++) await repo.addSegment(n, { bytes: 1024 });

    const out = await removeUnneededWal({ catalog: repo.catalog, layout: repo.layout, logger: nullLogger(), names: true, pageSize: 3 });
    assert.equal(out.before, wal(12));
    assert.deepEqual(out.names, [1, 2, 5, 6, 7, 8, 9, 10, 11].map((n) => wal(n)));
    assert.equal(out.removed, 9);
    const left = repo.catalog.listWalSegments('pg').map((s) => s.name);
    assert.deepEqual(left, [3, 4, ...Array.from({ length: 9 }, (_, i) => 12 + i)].map((n) => wal(n)));
    assert.equal(existsSync(repo.layout.walFilePath(wal(2), 'none')), false);
    assert.equal(existsSync(repo.layout.walFilePath(wal(3), 'none')), true, 'keep:standalone WAL stays');
    assert.equal(existsSync(repo.layout.walFilePath(wal(12), 'none')), true);

    // A second pass finds nothing more.
    const again = await removeUnneededWal({ catalog: repo.catalog, layout: repo.layout, logger: nullLogger() });
    assert.equal(again.removed, 0);
  });

  test('without a DONE backup nothing goes', async () => {
    const repo = await makeRepo();
    repos.push(repo);
    await repo.addBackup(backup('20261110T010000', 5, 6, { status: 'FAILED' }));
    for (let n = 1; n <= 8; n++) await repo.addSegment(n, { bytes: 512 });
    const out = await removeUnneededWal({ catalog: repo.catalog, layout: repo.layout, logger: nullLogger() });
    assert.equal(out.removed, 0);
    assert.equal(repo.catalog.countWalSegments('pg'), 8);
  });

  test("wal_delete hooks run around each segment with Barman's environment, in Barman's order", async () => {
    const repo = await makeRepo();
    repos.push(repo);
    const log = join(repo.home, 'hooks.jsonl');
    const hooks = {
      pre_wal_delete_script: await hookScript(repo, 'pre', log, 1), // a failing plain script is only logged
      pre_wal_delete_retry_script: await hookScript(repo, 'pre-retry', log),
      post_wal_delete_retry_script: await hookScript(repo, 'post-retry', log),
      post_wal_delete_script: await hookScript(repo, 'post', log),
    };
    await repo.addBackup(backup('20261110T010000', 3, 3));
    for (let n = 1; n <= 4; n++) await repo.addSegment(n, { bytes: 2048 });
    const out = await removeUnneededWal({
      catalog: repo.catalog, layout: repo.layout, logger: nullLogger(), server: { name: 'pg', hooks }, configFiles: ['/etc/barmants.conf'],
    });
    assert.equal(out.removed, 2);
    const runs = lines(log);
    assert.deepEqual(
      runs.map((r) => `${r['BARMAN_SEGMENT']} ${r['BARMAN_PHASE']} ${r['BARMAN_HOOK']} ${r['BARMAN_RETRY']}`),
      [wal(1), wal(2)].flatMap((s) => [
        `${s} pre wal_delete_script 0`, `${s} pre wal_delete_retry_script 1`, `${s} post wal_delete_retry_script 1`, `${s} post wal_delete_script 0`,
      ]),
    );
    const first = runs[0]!;
    assert.equal(first['BARMAN_SERVER'], 'pg');
    assert.equal(first['BARMAN_CONFIGURATION'], '/etc/barmants.conf');
    assert.equal(first['BARMAN_FILE'], repo.layout.walFilePath(wal(1), 'none'));
    assert.equal(first['BARMAN_SIZE'], '2048');
    assert.equal(first['BARMAN_COMPRESSION'], '');
    assert.ok(Number(first['BARMAN_TIMESTAMP']) > 1.7e9, `BARMAN_TIMESTAMP is epoch seconds: ${first['BARMAN_TIMESTAMP']}`);
    assert.equal(first['BARMAN_ERROR'], '');
    assert.ok(first['BARMAN_VERSION'], 'BARMAN_VERSION set');
    // The pre hooks saw the file still there; the post hooks run after it is gone.
    assert.equal(existsSync(repo.layout.walFilePath(wal(1), 'none')), false);
  });

  test('a pre_wal_delete_retry_script answering 63 stops the removal: the segment and the later ones stay', async () => {
    const repo = await makeRepo();
    repos.push(repo);
    const log = join(repo.home, 'hooks.jsonl');
    await repo.addBackup(backup('20261110T010000', 4, 4));
    for (let n = 1; n <= 4; n++) await repo.addSegment(n, { bytes: 512 });
    await assert.rejects(
      removeUnneededWal({
        catalog: repo.catalog, layout: repo.layout, logger: nullLogger(), server: { name: 'pg', hooks: { pre_wal_delete_retry_script: await hookScript(repo, 'stop', log, 63) } },
      }),
      /aborted the wal_delete \(exit 63\)/,
    );
    assert.equal(lines(log).length, 1, 'asked once, then stopped');
    assert.equal(repo.catalog.countWalSegments('pg'), 4);
    assert.equal(existsSync(repo.layout.walFilePath(wal(1), 'none')), true);
  });

  test('50,000 segments: removed page by page, the archive is never listed whole', async () => {
    const repo = await makeRepo();
    repos.push(repo);
    const N = 50_000;
    const perLog = 0x1_0000_0000 / SEG;
    const name = (n: number) => `00000001${Math.floor(n / perLog).toString(16).toUpperCase().padStart(8, '0')}${(n % perLog).toString(16).toUpperCase().padStart(8, '0')}`;
    repo.catalog.addWalSegments(
      (function* () {
        for (let n = 1; n <= N; n++) {
          yield { server: 'pg', timeline: 1, segno: BigInt(n), name: name(n), size: SEG, storedSize: 1000, compression: 'gzip', checksum: 'x', archivedAt: '2026-11-20T00:00:00Z' };
        }
      })(),
    );
    await repo.addBackup(backup('20261110T010000', 0, 0, { beginWal: name(N - 10), endWal: name(N - 10) }));
    const listAll = repo.catalog.listWalSegments.bind(repo.catalog);
    let wholeListings = 0;
    repo.catalog.listWalSegments = (server, opts = {}) => {
      if (opts.limit === undefined && opts.toSegno === undefined) wholeListings++;
      return listAll(server, opts);
    };
    const out = await removeUnneededWal({ catalog: repo.catalog, layout: repo.layout, logger: nullLogger() });
    assert.equal(out.removed, N - 11);
    assert.equal(out.names.length, 0, 'names are only collected when asked for');
    assert.equal(wholeListings, 0, 'no listing of the whole archive');
    assert.equal(repo.catalog.countWalSegments('pg'), 11);
    assert.equal(repo.catalog.firstWalSegment('pg')!.name, name(N - 10));
  });
});
