// config/systemd/barmants.service: `systemd-analyze verify` accepts it (run offline: no systemd
// needs to be PID 1, and a unit it dislikes still exits 0, so any complaint naming the unit fails
// the test; a deliberately broken copy proves the complaint would be seen), and it says what the
// service needs: Type=exec, the barmants user, SIGHUP on reload, restart on failure, hardening.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../helpers/config.js';

const UNIT = join(REPO_ROOT, 'config', 'systemd', 'barmants.service');
const ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));

/** Runs `systemd-analyze verify` on `text` saved as barmants.service; returns what it said about it. */
function verify(text: string): { status: number | null; complaints: string[]; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'barmants-unit-'));
  try {
    const file = join(dir, 'barmants.service');
    writeFileSync(file, text);
    // --man=no: do not look up man pages (none installed in containers).
    const r = spawnSync(ANALYZE!, ['verify', '--man=no', file], { encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_COLOR: '0', SYSTEMD_PAGER: '' } });
    const output = `${r.stdout}${r.stderr}`;
    const complaints = output.split('\n').filter((l) => l.includes('barmants.service'));
    return { status: r.status, complaints, output };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('systemd-analyze verify accepts config/systemd/barmants.service', { skip: ANALYZE ? false : 'systemd-analyze not installed (.ci/run installs systemd)' }, () => {
  const text = readFileSync(UNIT, 'utf8');
  const ok = verify(text);
  assert.equal(ok.status, 0, ok.output);
  assert.deepEqual(ok.complaints, [], ok.output);

  // The same check on a broken copy must complain, or the assertion above proves nothing here.
  const broken = verify(text.replace(/^NoNewPrivileges=yes$/m, 'NoNewPrivileges=maybe').replace(/^Type=exec$/m, 'Type=sometimes'));
  assert.ok(broken.complaints.length >= 2, `systemd-analyze did not report a broken unit:\n${broken.output}`);
});

test('the unit runs barmants daemon as barmants, reloads with SIGHUP, restarts on failure, hardened', () => {
  const lines = new Set(readFileSync(UNIT, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')));
  for (const want of [
    'Type=exec', 'User=barmants', 'ExecStart=/usr/bin/env barmants daemon', 'ExecReload=/bin/kill -HUP $MAINPID', 'Restart=on-failure',
    'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ReadWritePaths=/var/lib/barmants', 'PrivateTmp=yes', 'ProtectHome=yes', 'UMask=0077',
  ]) {
    assert.ok(lines.has(want), `missing: ${want}`);
  }
  assert.ok(![...lines].some((l) => l.startsWith('MemoryDenyWriteExecute=yes')), "V8's JIT needs W+X memory");
});
