// A backup process killed with SIGKILL mid-copy: the catalog stays consistent (the backup is
// STARTED with a dead pid), and the next backup takes the stale lock over, marks the killed one
// FAILED, removes its temporary files and succeeds.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useCluster, versionsUnderTest, generateLoad } from '../../harness/index.js';
import { barmants, CLI, waitFor, writeTestConfig, type TestConfig } from '../../helpers/config.js';
import { Catalog } from '../../../packages/barmants/src/catalog/index.js';

const version = versionsUnderTest()[0]!;

describe(`SIGKILL during a backup on PostgreSQL ${version}`, () => {
  const cluster = useCluster({ version, name: `backupkill${version}` });
  let cfg: TestConfig;
  after(async () => {
    await cfg?.cleanup();
  });

  test('the catalog stays consistent and the next backup succeeds', async () => {
    // ~50 MB of incompressible-ish rows, copied at 8 MB/s: several seconds mid-copy to kill in.
    await generateLoad(cluster(), { rows: 150_000, batches: 3, payloadBytes: 300 });
    cfg = await writeTestConfig(cluster(), { options: { bandwidth_limit: 8000 } });
    const child = spawn(process.execPath, [CLI, '-c', cfg.path, 'backup', 'pg'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_c, s) => r(s)));
    const dbPath = join(cfg.home, 'catalog.db');
    const started = await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`backup ended before it could be killed:\n${stderr}`);
      try {
        const cat = Catalog.open(dbPath, { readonly: true });
        try {
          return cat.listBackups('pg', { status: ['STARTED'] })[0] ?? null;
        } catch {
          return null;
        } finally {
          cat.close();
        }
      } catch {
        return null;
      }
    }, 'the catalog to show a STARTED backup', 30_000);
    // Mid-copy: some data files are already stored.
    const dataDir = join(cfg.home, 'pg', 'base', started.backupId, 'data', 'base');
    await waitFor(async () => (await readdir(dataDir, { recursive: true }).catch(() => [])).length > 50, 'data files to be stored', 30_000);
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');

    // Consistent: one STARTED row, whose backup.info agrees; list-backups works without the lock.
    let r = await barmants(cfg, ['-f', 'json', 'list-backups', 'pg']);
    assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout).pg;
    assert.equal(list.length, 1);
    assert.equal(list[0].status, 'STARTED');
    assert.equal(JSON.parse(await readFile(join(cfg.home, 'pg', 'base', started.backupId, 'backup.info'), 'utf8')).status, 'STARTED');

    r = await barmants(cfg, ['-f', 'json', 'backup', 'pg', '--wal'], { timeoutMs: 180_000 });
    assert.equal(r.code, 0, r.stderr);
    const b = JSON.parse(r.stdout).pg;
    assert.equal(b.status, 'DONE');
    assert.match(r.stderr, /interrupted/);
    r = await barmants(cfg, ['-f', 'json', 'show-backup', 'pg', started.backupId]);
    const killed = JSON.parse(r.stdout);
    assert.equal(killed.status, 'FAILED');
    assert.match(killed.error, /interrupted/);
    assert.equal(JSON.parse(await readFile(join(cfg.home, 'pg', 'base', started.backupId, 'backup.info'), 'utf8')).status, 'FAILED');
    const leftovers = (await readdir(join(cfg.home, 'pg', 'base', started.backupId), { recursive: true })).filter((f) => String(f).endsWith('.tmp'));
    assert.deepEqual(leftovers, []);
    const failed = (await barmants(cfg, ['list-backups', 'pg'])).stdout;
    assert.match(failed, new RegExp(`^pg ${started.backupId} - F - FAILED$`, 'm'));
    r = await barmants(cfg, ['verify-backup', 'pg', 'latest']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // The failed one can be deleted by name.
    r = await barmants(cfg, ['delete', 'pg', 'last-failed']);
    assert.equal(r.code, 0, r.stderr);
  });
});
