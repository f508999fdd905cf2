/*
 * The backup scheduler of one server: when its backup_schedule fires, and how many runs missed
 * while the daemon was down are made up for (backup_schedule_catchup, default 1: never a burst).
 * The last handled run is persisted in `<home>/.daemon/<server>.json` (durably), because the
 * catalog only knows backups, not schedule points: a manual backup is not a scheduled run.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log/index.js';
import { ensureDir, writeFileDurable } from '../repository/index.js';
import type { Clock } from './clock.js';
import { nextRun, parseSchedule, runsBetween, type CronSchedule } from './cron.js';

export interface ScheduleState {
  /** the expression the state belongs to: a changed schedule starts afresh */
  schedule: string;
  /** ISO time of the last schedule point handled (fired, skipped or replaced by a catch-up) */
  lastRun: string;
}

export interface ScheduleStore {
  load(server: string): Promise<ScheduleState | null>;
  save(server: string, state: ScheduleState): Promise<void>;
}

export function daemonStateDir(home: string): string {
  return join(home, '.daemon');
}

/** State files under `<home>/.daemon/`, 0600, written tmp → fsync → rename → fsync dir. */
export function fileScheduleStore(home: string): ScheduleStore {
  const dir = daemonStateDir(home);
  return {
    async load(server) {
      try {
        const o = JSON.parse(await readFile(join(dir, `${server}.json`), 'utf8')) as Partial<ScheduleState>;
        if (typeof o.schedule !== 'string' || typeof o.lastRun !== 'string' || Number.isNaN(Date.parse(o.lastRun))) return null;
        return { schedule: o.schedule, lastRun: o.lastRun };
      } catch {
        return null; // absent or damaged: the schedule starts from now, without catch-up
      }
    },
    async save(server, state) {
      await ensureDir(dir);
      await writeFileDurable(join(dir, `${server}.json`), JSON.stringify(state) + '\n');
    },
  };
}

export interface CatchupPlan {
  /** schedule points that passed since lastRun (counted up to 1000) */
  missed: number;
  /** how many backups to take now for them: min(missed, catchup) */
  catchUp: number;
}

/** Pure: what to make up for after a downtime. No state (first start) means nothing was missed. */
export function planCatchup(s: CronSchedule, lastRun: Date | null, now: Date, catchup: number): CatchupPlan {
  if (lastRun === null || lastRun.getTime() >= now.getTime()) return { missed: 0, catchUp: 0 };
  const missed = runsBetween(s, lastRun, now, 1000).length;
  return { missed, catchUp: Math.min(missed, Math.max(0, catchup)) };
}

export type DueKind = 'scheduled' | 'catch-up';

export class ServerSchedule {
  readonly cron: CronSchedule;
  private pendingCatchup = 0;
  private next: Date | null = null;

  constructor(
    readonly server: string,
    expression: string,
    private readonly catchup: number,
    private readonly store: ScheduleStore,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.cron = parseSchedule(expression);
  }

  get nextRunAt(): Date | null {
    return this.next;
  }

  get pendingCatchups(): number {
    return this.pendingCatchup;
  }

  /** Reads the persisted state, plans the catch-up, and records `now` as handled. */
  async init(): Promise<CatchupPlan> {
    const now = this.clock.now();
    const state = await this.store.load(this.server);
    const last = state && state.schedule === this.cron.expression ? new Date(state.lastRun) : null;
    const plan = planCatchup(this.cron, last, now, this.catchup);
    this.pendingCatchup = plan.catchUp;
    if (plan.missed > 0) {
      this.log.warn(
        `${plan.missed}${plan.missed >= 1000 ? '+' : ''} scheduled backup(s) missed since ${last!.toISOString()} while the daemon was down: ` +
          (plan.catchUp > 0 ? `taking ${plan.catchUp} catch-up backup(s) now (backup_schedule_catchup = ${this.catchup})` : 'not made up for (backup_schedule_catchup = 0)'),
      );
    }
    // Persisting before the catch-up runs: a crash during it does not multiply catch-ups.
    await this.store.save(this.server, { schedule: this.cron.expression, lastRun: now.toISOString() });
    this.next = nextRun(this.cron, now);
    this.log.info(`backup schedule '${this.cron.expression}': next backup at ${this.next?.toISOString() ?? 'never'}`);
    return plan;
  }

  /**
   * Called on every daemon tick. `busy` says a backup of this server is running: a due
   * scheduled run is then skipped (never two backups at once), a catch-up waits its turn.
   */
  async due(busy: boolean): Promise<DueKind | null> {
    const now = this.clock.now();
    if (this.next !== null && now.getTime() >= this.next.getTime()) {
      const point = this.next;
      // Several points may have passed (suspend, a long pause): they count as one.
      this.next = nextRun(this.cron, now);
      await this.store.save(this.server, { schedule: this.cron.expression, lastRun: point.toISOString() });
      if (busy) {
        this.log.warn(`scheduled backup of ${point.toISOString()} skipped: a backup of this server is still running`);
        return null;
      }
      // A scheduled run satisfies any catch-up still pending: the newest backup is what matters.
      this.pendingCatchup = 0;
      return 'scheduled';
    }
    if (this.pendingCatchup > 0 && !busy) {
      this.pendingCatchup--;
      return 'catch-up';
    }
    return null;
  }
}
