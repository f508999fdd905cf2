// The receiver supervisor: capped exponential backoff with jitter, reset after a healthy run,
// clean stop, and a stuck task that never blocks another server's task.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Supervisor, type SupervisorEvent } from '../../../packages/barmants/src/daemon/index.js';
import { nullLogger } from '../../../packages/barmants/src/log/index.js';
import { FakeClock, settle, until } from './fake-clock.js';

describe('Supervisor', () => {
  test('failures back off exponentially up to the cap, with jitter in [50%, 100%]', async () => {
    const clock = new FakeClock(0);
    let runs = 0;
    const events: SupervisorEvent[] = [];
    const sup = new Supervisor({
      name: 'receiver', clock, logger: nullLogger(), baseMs: 1000, capMs: 8000, random: () => 1,
      task: async () => { runs++; throw new Error('connection refused'); },
      onEvent: (e) => events.push(e),
    });
    sup.start();
    for (let i = 1; i <= 6; i++) {
      await until(() => sup.delays.length === i, `failure ${i}`);
      await clock.advance(sup.delays[i - 1]!);
    }
    assert.deepEqual(sup.delays.slice(0, 6), [1000, 2000, 4000, 8000, 8000, 8000]);
    assert.ok(runs >= 6);
    const backoff = events.find((e) => e.state === 'backoff')!;
    assert.equal(backoff.error, 'connection refused');
    assert.equal(backoff.retryInMs, 1000);
    assert.equal(await sup.stop(1000), true);
    assert.equal(sup.state.state, 'stopped');

    const jitter = new Supervisor({
      name: 'j', clock, logger: nullLogger(), baseMs: 1000, capMs: 8000, random: () => 0,
      task: async () => { throw new Error('x'); },
    });
    jitter.start();
    await until(() => jitter.delays.length === 1, 'first failure');
    assert.equal(jitter.delays[0], 500);
    await jitter.stop(1000);
  });

  test('a run that stayed up longer than healthyMs resets the backoff', async () => {
    const clock = new FakeClock(0);
    let n = 0;
    const sup = new Supervisor({
      name: 'receiver', clock, logger: nullLogger(), baseMs: 1000, capMs: 60_000, healthyMs: 10_000, random: () => 1,
      task: async () => {
        n++;
        if (n === 3) await clock.sleep(20_000); // third run is healthy for 20 s, then fails
        throw new Error('boom');
      },
    });
    sup.start();
    await until(() => sup.delays.length === 1, 'f1');
    await clock.advance(1000);
    await until(() => sup.delays.length === 2, 'f2');
    await clock.advance(2000);
    await until(() => clock.pendingSleeps === 1 && sup.state.state === 'running', 'healthy run');
    await clock.advance(20_000);
    await until(() => sup.delays.length === 3, 'f3');
    assert.deepEqual(sup.delays, [1000, 2000, 1000]);
    await sup.stop(1000);
  });

  test('stop aborts the task; a stuck task does not block another one', async () => {
    const clock = new FakeClock(0);
    let aborted = false;
    const healthy = new Supervisor({
      name: 'ok', clock, logger: nullLogger(),
      task: (signal) => new Promise<void>((resolve) => signal.addEventListener('abort', () => { aborted = true; resolve(); })),
    });
    const stuck = new Supervisor({ name: 'stuck', clock, logger: nullLogger(), task: () => new Promise<void>(() => undefined) });
    let flaky = 0;
    const other = new Supervisor({
      name: 'flaky', clock, logger: nullLogger(), baseMs: 10, capMs: 10, random: () => 1,
      task: async () => { flaky++; throw new Error('down'); },
    });
    healthy.start();
    stuck.start();
    other.start();
    for (let i = 1; i <= 3; i++) {
      await until(() => other.delays.length === i, `flaky ${i}`);
      await clock.advance(10);
    }
    assert.ok(flaky >= 3, 'the flaky server kept being restarted while another was stuck');
    assert.equal(await healthy.stop(1000), true);
    assert.equal(aborted, true);
    assert.equal(await stuck.stop(50), false, 'a task ignoring the abort is reported, not awaited forever');
    await other.stop(1000);
    await settle();
  });
});
