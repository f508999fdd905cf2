// loadPg: node-postgres loaded on first use, with a stand-in `navigator` while it loads (so that
// its Cloudflare check does not load undici) that must not outlive the load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadPg } from '../../../packages/pg-replication/src/index.js';

test('loadPg returns pg and leaves globalThis.navigator as it found it', () => {
  const before = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
  const pg = loadPg();
  assert.equal(typeof pg.Client, 'function');
  assert.equal(loadPg(), pg, 'loaded once');
  assert.deepEqual(Object.getOwnPropertyDescriptor(globalThis, 'navigator'), before);
  // pg chose its Node.js socket, not the Cloudflare one.
  const stream = (new pg.Client({}) as unknown as { connection: { stream: object } }).connection.stream;
  assert.equal(stream.constructor.name, 'Socket');
});
