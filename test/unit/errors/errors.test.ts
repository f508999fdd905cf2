import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BarmantsError, ERRORS, exitCodeOf, formatError, isBarmantsError } from '../../../packages/barmants/src/errors/index.js';

test('every error kind has an exit status and a hint', () => {
  for (const [kind, def] of Object.entries(ERRORS)) {
    assert.ok(Number.isInteger(def.exit) && def.exit >= 1, kind);
    assert.ok(def.hint.length > 10, kind);
  }
  assert.equal(ERRORS.config.exit, 2);
  assert.equal(ERRORS.usage.exit, 2);
  assert.equal(ERRORS.connection.exit, 3);
  assert.equal(ERRORS.internal.exit, 1);
});

test('BarmantsError carries kind, exit code, default or custom hint and cause', () => {
  const cause = new Error('boom');
  const e = new BarmantsError('lock', 'server pg is locked', { cause });
  assert.equal(e.kind, 'lock');
  assert.equal(e.exitCode, ERRORS.lock.exit);
  assert.equal(e.hint, ERRORS.lock.hint);
  assert.equal(e.cause, cause);
  assert.ok(isBarmantsError(e));
  assert.ok(isBarmantsError(e, 'lock'));
  assert.ok(!isBarmantsError(e, 'io'));
  const custom = new BarmantsError('io', 'disk full', { hint: 'free some space' });
  assert.equal(custom.hint, 'free some space');
  assert.equal(exitCodeOf(custom), ERRORS.io.exit);
  assert.equal(exitCodeOf(new Error('x')), 1);
});

test('formatError prints message and hint, stack only in debug mode', () => {
  const e = new BarmantsError('config', 'bad thing', { hint: 'do this', cause: new Error('root cause') });
  assert.equal(formatError(e, false), 'barmants: error: bad thing\nHINT: do this');
  const debug = formatError(e, true);
  assert.match(debug, /^barmants: error: bad thing\nHINT: do this\n/);
  assert.match(debug, /at /);
  assert.match(debug, /caused by: Error: root cause/);
});

test('formatError treats foreign errors and non-errors as internal', () => {
  assert.equal(formatError(new TypeError('oops'), false), `barmants: error: oops\nHINT: ${ERRORS.internal.hint}`);
  assert.equal(formatError('plain', false), `barmants: error: plain\nHINT: ${ERRORS.internal.hint}`);
});

test('a system call failure that reaches the top is an I/O error, not a bug', async () => {
  const { openSync } = await import('node:fs');
  let enoent: unknown;
  try {
    openSync('/nonexistent/barmants/file', 'r');
  } catch (e) {
    enoent = e;
  }
  assert.equal(exitCodeOf(enoent), ERRORS.io.exit);
  assert.match(formatError(enoent, false), new RegExp(`HINT: ${ERRORS.io.hint}`));
  // An error that merely has a code is not a system call failure.
  assert.equal(exitCodeOf(Object.assign(new Error('x'), { code: 'ENOSPC' })), ERRORS.internal.exit);
});
