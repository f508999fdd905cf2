/*
 * Barman's deletion hooks around what retention and `barmants delete` remove, on a real cluster
 * with WAL streamed by `receive-wal`: pre/post_wal_delete_script around each WAL segment the
 * retention pass (`barmants cron`) removes, pre/post_delete_script around each backup deleted by
 * retention or by `barmants delete`, all run without a shell and with Barman's environment. A
 * failing plain pre script is only logged, as in Barman: the deletion still happens.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateLoad, useCluster } from '../../harness/index.js';
import { barmants, waitFor, writeTestConfig, type TestConfig } from '../../helpers/config.js';
import type { Catalog } from '../../../packages/barmants/src/catalog/index.js';
import { startCli, writeAndSwitch } from '../wal/helpers.js';
import { openCatalog, twoVersions } from './helpers.js';

const version = twoVersions()[0];

type HookRun = Record<string, string>;

describe(`deletion hooks around retention and delete (PostgreSQL ${version})`, () => {
  const cluster = useCluster({ version, walSegmentSizeMB: 1 });
  let cfg: TestConfig;
  let catalog: Catalog | undefined;
  let receiver: ReturnType<typeof startCli> | undefined;
  let hookLog: string;

  const runs = (): HookRun[] =>
    existsSync(hookLog) ? readFileSync(hookLog, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as HookRun) : [];
  const ok = async (args: string[]): Promise<string> => {
    const r = await barmants(cfg, args, { timeoutMs: 120_000 });
    assert.equal(r.code, 0, `barmants ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    cfg = await writeTestConfig(cluster());
    hookLog = join(cfg.home, 'hooks.jsonl');
    const script = join(cfg.home, 'hook.mjs');
    // Records the BARMAN_* environment; exits with the code given as its argument.
    await writeFile(
      script,
      `import { appendFileSync } from 'node:fs';
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('BARMAN_')));
appendFileSync(${JSON.stringify(hookLog)}, JSON.stringify(env) + '\\n');
process.exit(Number(process.argv[2] ?? 0));
`,
    );
    const hook = (code = 0) => `${process.execPath} ${script} ${code}`;
    cfg = await writeTestConfig(cluster(), {
      home: cfg.home,
      options: {
        streaming_archiver: 'on',
        slot_name: 'barmants',
        create_slot: 'auto',
        retention_policy: 'REDUNDANCY 1',
        pre_delete_script: hook(1), // fails: logged, never fatal (Barman)
        post_delete_script: hook(),
        pre_wal_delete_script: hook(),
        post_wal_delete_retry_script: hook(),
      },
    });
    receiver = startCli(['-c', cfg.path, 'receive-wal', 'pg']);
    catalog = await openCatalog(cfg.home);
    await waitFor(() => catalog!.getHeartbeat('pg')?.state === 'streaming', 'receive-wal streaming', 30_000);
  });
  after(async () => {
    receiver?.child.kill('SIGTERM');
    if (receiver) await receiver.exited;
    catalog?.close();
    await cfg?.cleanup();
  });

  test('retention removes the WAL before the only backup: wal_delete hooks around each segment', async () => {
    const cat = catalog!;
    for (let i = 0; i < 3; i++) {
      const seg = await writeAndSwitch(cluster());
      await waitFor(() => cat.getWalSegment('pg', seg) !== null, `${seg} archived\n${receiver!.stderr()}`, 30_000);
    }
    await ok(['backup', 'pg', '--wait']);
    const first = cat.resolveBackupId('pg', 'latest')!;
    const doomed = cat.listWalSegments('pg').filter((s) => s.name < first.beginWal!);
    assert.ok(doomed.length >= 3, `WAL before ${first.beginWal}: ${doomed.map((s) => s.name).join(' ')}`);

    await ok(['cron']);
    const left = cat.listWalSegments('pg').map((s) => s.name);
    assert.ok(left.every((n) => n >= first.beginWal!), 'WAL before the backup removed');
    const wal = runs().filter((r) => r['BARMAN_HOOK']?.startsWith('wal_delete'));
    assert.deepEqual(
      wal.map((r) => `${r['BARMAN_SEGMENT']} ${r['BARMAN_PHASE']} ${r['BARMAN_HOOK']}`),
      doomed.flatMap((s) => [`${s.name} pre wal_delete_script`, `${s.name} post wal_delete_retry_script`]),
      'pre before and post after each segment, in order',
    );
    const one = wal[0]!;
    assert.equal(one['BARMAN_SERVER'], 'pg');
    assert.equal(one['BARMAN_CONFIGURATION'], cfg.path);
    assert.match(one['BARMAN_FILE']!, new RegExp(`/wals/[0-9A-F]{16}/${doomed[0]!.name}$`));
    assert.equal(one['BARMAN_SIZE'], String(doomed[0]!.storedSize));
    assert.equal(one['BARMAN_RETRY'], '0');
    assert.equal(wal[1]!['BARMAN_RETRY'], '1');
    assert.equal(wal[1]!['BARMAN_ERROR'], '');
    for (const r of wal) assert.equal(existsSync(r['BARMAN_FILE']!), false, `${r['BARMAN_FILE']} removed`);
  });

  test('retention deleting a backup, and barmants delete: pre/post_delete hooks with the backup environment', async () => {
    const cat = catalog!;
    const first = cat.resolveBackupId('pg', 'latest')!;
    await generateLoad(cluster(), { rows: 100 });
    await ok(['backup', 'pg', '--wait']);
    const second = cat.resolveBackupId('pg', 'latest')!;
    assert.notEqual(second.backupId, first.backupId);

    await ok(['cron']);
    assert.equal(cat.getBackup('pg', first.backupId), null, 'REDUNDANCY 1: the older backup deleted');
    let del = runs().filter((r) => r['BARMAN_HOOK'] === 'delete_script');
    assert.deepEqual(del.map((r) => `${r['BARMAN_BACKUP_ID']} ${r['BARMAN_PHASE']}`), [`${first.backupId} pre`, `${first.backupId} post`]);
    assert.equal(del[0]!['BARMAN_SERVER'], 'pg');
    assert.equal(del[0]!['BARMAN_NEXT_ID'], second.backupId);
    assert.match(del[0]!['BARMAN_BACKUP_DIR']!, new RegExp(`/pg/base/${first.backupId}$`));
    assert.equal(del[0]!['BARMAN_STATUS'], 'DONE');

    await ok(['delete', 'pg', second.backupId]);
    assert.equal(cat.getBackup('pg', second.backupId), null, 'deleted although pre_delete_script exited 1');
    del = runs().filter((r) => r['BARMAN_HOOK'] === 'delete_script');
    assert.deepEqual(del.slice(2).map((r) => `${r['BARMAN_BACKUP_ID']} ${r['BARMAN_PHASE']}`), [`${second.backupId} pre`, `${second.backupId} post`]);
  });
});
