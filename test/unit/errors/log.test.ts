// Tests for src/log (kept here because this helper owns test/unit/errors, not test/unit/log).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, nullLogger, redactSecrets } from '../../../packages/barmants/src/log/index.js';

test('redactSecrets masks conninfo passwords, URL passwords and JSON passwords', () => {
  assert.equal(redactSecrets('host=db password=s3cret user=x'), 'host=db password=******** user=x');
  assert.equal(redactSecrets("host=db password='a b\\'c' user=x"), 'host=db password=******** user=x');
  assert.equal(redactSecrets('PGPASSWORD=abc psql'), 'PGPASSWORD=******** psql');
  assert.equal(redactSecrets('sslpassword = abc'), 'sslpassword = ********');
  assert.equal(redactSecrets('postgres://bob:hunter2@db:5432/x'), 'postgres://bob:********@db:5432/x');
  assert.equal(redactSecrets('postgresql://db/x?user=a&password=zz&sslmode=require'), 'postgresql://db/x?user=a&password=********&sslmode=require');
  assert.equal(redactSecrets('{"password":"x\\"y","user":"u"}'), '{"password":"********","user":"u"}');
  assert.equal(redactSecrets('nothing secret here'), 'nothing secret here');
});

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c.toString()));
  return { stream, text: () => chunks.join('') };
}

test('logger writes Barman-style lines with context and redacts secrets', async () => {
  const out = capture();
  const log = createLogger({ level: 'info', console: false, stream: out.stream });
  log.child({ server: 'pg' }).info('connecting with host=a password=xyz');
  log.child({ server: 'pg', backup: '20261127T100000' }).child({ component: 'backup' }).warn('slow');
  log.debug('hidden');
  await new Promise((r) => setImmediate(r));
  const lines = out.text().trim().split('\n');
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO  \[pg\] connecting with host=a password=\*{8}$/);
  assert.match(lines[1]!, /WARNING \[pg\/20261127T100000\] backup: slow$/);
  await log.close();
});

test('logger writes JSON lines to a file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'barmants-log-'));
  const file = join(dir, 'x.log');
  const log = createLogger({ level: 'DEBUG', console: false, file, json: true });
  log.child({ server: 'pg' }).debug('url postgres://u:pw@h/db', { n: 1 });
  await log.close();
  const rec = JSON.parse(readFileSync(file, 'utf8').trim()) as Record<string, unknown>;
  assert.equal(rec['level'], 'DEBUG');
  assert.equal(rec['server'], 'pg');
  assert.equal(rec['n'], 1);
  assert.equal(rec['message'], 'url postgres://u:********@h/db');
});

test('unknown level is refused; nullLogger swallows everything', () => {
  assert.throws(() => createLogger({ level: 'loud', console: false }), /unknown log level/);
  const n = nullLogger();
  n.info('x');
  assert.equal(n.child({ server: 'a' }), n);
});
