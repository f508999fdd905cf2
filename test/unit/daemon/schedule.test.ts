// The backup scheduler: cron next-run arithmetic, and catch-up after downtime with a pinned clock.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  nextRun, parseSchedule, planCatchup, ServerSchedule, type ScheduleState, type ScheduleStore,
} from '../../../packages/barmants/src/daemon/index.js';
import { nullLogger } from '../../../packages/barmants/src/log/index.js';
import { FakeClock } from './fake-clock.js';

const local = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0): Date => new Date(y, mo - 1, d, h, mi, s);

function memoryStore(initial?: ScheduleState): ScheduleStore & { state: ScheduleState | null; saves: number } {
  const store = {
    state: initial ?? null,
    saves: 0,
    async load() {
      return store.state;
    },
    async save(_server: string, s: ScheduleState) {
      store.state = s;
      store.saves++;
    },
  };
  return store;
}

describe('cron next run', () => {
  test('daily at 02:00', () => {
    const s = parseSchedule('0 2 * * *');
    assert.deepEqual(nextRun(s, local(2026, 11, 27, 1, 59, 59)), local(2026, 11, 27, 2, 0, 0));
    assert.deepEqual(nextRun(s, local(2026, 11, 27, 2, 0, 0)), local(2026, 11, 28, 2, 0, 0), 'strictly after');
  });
  test('six fields with seconds', () => {
    const s = parseSchedule('*/5 * * * * *');
    assert.deepEqual(nextRun(s, local(2026, 1, 1, 0, 0, 3)), local(2026, 1, 1, 0, 0, 5));
    assert.deepEqual(nextRun(s, local(2026, 1, 1, 0, 0, 59)), local(2026, 1, 1, 0, 1, 0));
  });
  test('names, ranges, year and leap-day roll-over', () => {
    assert.deepEqual(nextRun(parseSchedule('30 4 * * mon'), local(2026, 11, 27, 12)), local(2026, 11, 30, 4, 30)); // Fri → Mon
    assert.deepEqual(nextRun(parseSchedule('0 0 1 jan *'), local(2026, 6, 1)), local(2027, 1, 1));
    assert.deepEqual(nextRun(parseSchedule('0 0 29 2 *'), local(2026, 3, 1)), local(2028, 2, 29));
    assert.deepEqual(nextRun(parseSchedule('0 22 * * 1-5'), local(2026, 11, 28, 23)), local(2026, 11, 30, 22)); // Sat → Mon
  });
  test('invalid expressions are config errors', () => {
    assert.throws(() => parseSchedule('61 * * * *'), /invalid backup_schedule/);
    assert.throws(() => parseSchedule(''), /invalid backup_schedule/);
  });
});

describe('catch-up planning (pure)', () => {
  const daily = parseSchedule('0 2 * * *');
  test('no previous run: nothing missed', () => {
    assert.deepEqual(planCatchup(daily, null, local(2026, 11, 27, 12), 1), { missed: 0, catchUp: 0 });
  });
  test('three days down, catchup 1: one backup, not three', () => {
    assert.deepEqual(planCatchup(daily, local(2026, 11, 24, 2), local(2026, 11, 27, 12), 1), { missed: 3, catchUp: 1 });
  });
  test('catchup 0 replays nothing; catchup 5 is capped by what was missed', () => {
    assert.deepEqual(planCatchup(daily, local(2026, 11, 24, 2), local(2026, 11, 27, 12), 0), { missed: 3, catchUp: 0 });
    assert.deepEqual(planCatchup(daily, local(2026, 11, 26, 2), local(2026, 11, 27, 12), 5), { missed: 1, catchUp: 1 });
  });
  test('down less than one period: nothing missed', () => {
    assert.deepEqual(planCatchup(daily, local(2026, 11, 27, 2), local(2026, 11, 27, 12), 1), { missed: 0, catchUp: 0 });
  });
});

describe('ServerSchedule with an injected clock', () => {
  test('first start: no catch-up, fires at the next point, persists it', async () => {
    const clock = new FakeClock(local(2026, 11, 27, 1, 0).getTime());
    const store = memoryStore();
    const s = new ServerSchedule('pg', '0 2 * * *', 1, store, clock, nullLogger());
    assert.deepEqual(await s.init(), { missed: 0, catchUp: 0 });
    assert.deepEqual(s.nextRunAt, local(2026, 11, 27, 2));
    assert.equal(await s.due(false), null);
    await clock.advance(60 * 60 * 1000);
    assert.equal(await s.due(false), 'scheduled');
    assert.equal(store.state!.lastRun, local(2026, 11, 27, 2).toISOString());
    assert.equal(await s.due(false), null, 'fires once per point');
    assert.deepEqual(s.nextRunAt, local(2026, 11, 28, 2));
  });

  test('restart after three missed runs: exactly one catch-up (default), then the normal schedule', async () => {
    const clock = new FakeClock(local(2026, 11, 27, 12).getTime());
    const store = memoryStore({ schedule: '0 2 * * *', lastRun: local(2026, 11, 24, 2).toISOString() });
    const s = new ServerSchedule('pg', '0 2 * * *', 1, store, clock, nullLogger());
    assert.deepEqual(await s.init(), { missed: 3, catchUp: 1 });
    assert.equal(store.state!.lastRun, local(2026, 11, 27, 12).toISOString(), 'handled point persisted before the catch-up runs');
    assert.equal(await s.due(true), null, 'waits while a backup runs');
    assert.equal(s.pendingCatchups, 1);
    assert.equal(await s.due(false), 'catch-up');
    assert.equal(await s.due(false), null);
    // A second restart right away does not catch up again.
    const again = new ServerSchedule('pg', '0 2 * * *', 1, store, clock, nullLogger());
    assert.deepEqual(await again.init(), { missed: 0, catchUp: 0 });
  });

  test('backup_schedule_catchup = 2 with five missed: two catch-ups, one at a time', async () => {
    const clock = new FakeClock(local(2026, 11, 27, 12).getTime());
    const store = memoryStore({ schedule: '0 2 * * *', lastRun: local(2026, 11, 22, 2).toISOString() });
    const s = new ServerSchedule('pg', '0 2 * * *', 2, store, clock, nullLogger());
    assert.deepEqual(await s.init(), { missed: 5, catchUp: 2 });
    assert.equal(await s.due(false), 'catch-up');
    assert.equal(await s.due(true), null);
    assert.equal(await s.due(false), 'catch-up');
    assert.equal(await s.due(false), null);
  });

  test('a changed expression starts afresh (no catch-up from the old schedule)', async () => {
    const clock = new FakeClock(local(2026, 11, 27, 12).getTime());
    const store = memoryStore({ schedule: '0 3 * * *', lastRun: local(2026, 11, 20, 3).toISOString() });
    const s = new ServerSchedule('pg', '0 2 * * *', 1, store, clock, nullLogger());
    assert.deepEqual(await s.init(), { missed: 0, catchUp: 0 });
  });

  test('a point that comes while a backup runs is skipped, never queued', async () => {
    const clock = new FakeClock(local(2026, 1, 1, 0, 0, 1).getTime());
    const store = memoryStore();
    const s = new ServerSchedule('pg', '*/5 * * * * *', 1, store, clock, nullLogger());
    await s.init();
    await clock.advance(4000);
    assert.equal(await s.due(true), null);
    assert.equal(store.state!.lastRun, local(2026, 1, 1, 0, 0, 5).toISOString());
    await clock.advance(1000);
    assert.equal(await s.due(false), null, 'nothing queued');
    await clock.advance(4000);
    assert.equal(await s.due(false), 'scheduled');
  });

  test('a long pause (suspend) that spans several points fires once', async () => {
    const clock = new FakeClock(local(2026, 1, 1, 0, 0, 1).getTime());
    const s = new ServerSchedule('pg', '*/5 * * * * *', 1, memoryStore(), clock, nullLogger());
    await s.init();
    await clock.advance(60_000);
    assert.equal(await s.due(false), 'scheduled');
    assert.equal(await s.due(false), null);
  });
});
