// The daemon's logging: log_file reopened by name the way logrotate expects (rename, reopen, the
// next line starts a new file under the old name; nothing is lost or misplaced), log_format = json
// on every destination, and a log_level changed at reload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../../packages/barmants/src/log/index.js';

async function until(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('reopen(): lines before it stay in the renamed file, lines after it go to a new file at the old path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'barmants-logrotate-'));
  try {
    const file = join(dir, 'barmants.log');
    const log = createLogger({ level: 'INFO', console: false, file });
    log.info('first');
    await until(() => existsSync(file));
    for (let i = 0; i < 50; i++) log.child({ server: 'pg' }).info(`before ${i}`);
    // logrotate renames while lines may still be queued, then SIGHUP → reopen().
    renameSync(file, `${file}.1`);
    log.reopen();
    for (let i = 0; i < 50; i++) log.child({ server: 'pg' }).info(`after ${i}`);
    await log.close();
    const rotated = readFileSync(`${file}.1`, 'utf8').trim().split('\n').slice(1);
    const fresh = readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(rotated.length, 50);
    assert.equal(fresh.length, 50);
    assert.ok(rotated.every((l) => / INFO  \[pg\] before \d+$/.test(l)), rotated.find((l) => !/before/.test(l)));
    assert.ok(fresh.every((l) => / INFO  \[pg\] after \d+$/.test(l)), fresh.find((l) => !/after/.test(l)));
    assert.equal(statSync(file).mode & 0o777, 0o600, 'a new log file is private');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('log_format = json applies to every destination; setLevel changes what is written', async () => {
  const chunks: string[] = [];
  const stream = new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb(); } });
  const log = createLogger({ level: 'INFO', console: false, stream, json: true });
  log.child({ server: 'pg', component: 'daemon' }).debug('hidden');
  log.setLevel('DEBUG');
  log.child({ server: 'pg', component: 'daemon' }).debug('shown password=hunter2');
  await log.close();
  const lines = chunks.join('').trim().split('\n');
  assert.equal(lines.length, 1);
  const rec = JSON.parse(lines[0]!) as Record<string, string>;
  assert.equal(rec['level'], 'DEBUG');
  assert.equal(rec['server'], 'pg');
  assert.equal(rec['component'], 'daemon');
  assert.equal(rec['message'], 'shown password=********');
  assert.match(rec['time']!, /^\d{4}-\d\d-\d\dT/);
});
