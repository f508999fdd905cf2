// The lazy command registry: the names it uses to pick a module must be exactly the commands and
// aliases that module defines, or a command would run without its module loaded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { COMMAND_MODULES, commandsFor } from '../../../packages/barmants/src/cli/commands/registry.js';

test('each module defines exactly the names the registry lists for it', async () => {
  for (const m of COMMAND_MODULES) {
    const specs = await m.load();
    const defined = specs.flatMap((s) => [s.command.split(' ')[0]!, ...(s.aliases ?? [])]).sort();
    assert.deepEqual(defined, [...m.names].sort());
  }
});

test('a named command loads its module only; help or no command loads them all', async () => {
  const all = (await commandsFor([])).length;
  const backup = await commandsFor(['-c', 'x.conf', 'backup', 'pg']);
  assert.ok(backup.some((s) => s.command.startsWith('backup ')));
  assert.ok(backup.length < all);
  assert.ok(!backup.some((s) => s.command === 'daemon'));
  assert.equal((await commandsFor(['backup', '--help'])).length, all);
  assert.equal((await commandsFor(['no-such-command'])).length, all);
});
