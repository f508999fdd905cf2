/*
 * Keeps one long-running task alive (a server's WAL receiver): when it fails or ends by itself it
 * is restarted after a capped exponential backoff with jitter, reset once a run has been healthy
 * for a while. Each supervised task is its own promise, so a stuck server never blocks another.
 */
import type { Logger } from '../log/index.js';
import { backoffDelay } from '../wal/index.js';
import type { Clock } from './clock.js';

export type SupervisedState = 'running' | 'backoff' | 'stopping' | 'stopped';

export interface SupervisorEvent {
  state: SupervisedState;
  /** restarts so far in the current failure streak */
  attempt: number;
  error?: string;
  retryInMs?: number;
}

export interface SupervisorOptions {
  name: string;
  task: (signal: AbortSignal) => Promise<void>;
  clock: Clock;
  logger: Logger;
  baseMs?: number;
  capMs?: number;
  /** a run that lasted this long resets the backoff */
  healthyMs?: number;
  random?: () => number;
  onEvent?: (e: SupervisorEvent) => void;
}

export class Supervisor {
  private readonly ac = new AbortController();
  private loopDone: Promise<void> | null = null;
  private current: SupervisorEvent = { state: 'stopped', attempt: 0 };
  /** every delay waited, for tests and status */
  readonly delays: number[] = [];

  constructor(private readonly opts: SupervisorOptions) {}

  get state(): SupervisorEvent {
    return this.current;
  }

  start(): void {
    if (this.loopDone) return;
    this.loopDone = this.loop();
  }

  /**
   * Aborts the task and waits for it to end, at most `timeoutMs`; returns false when the task
   * did not end in time (it is left behind, the caller decides what to do).
   */
  async stop(timeoutMs = 30_000): Promise<boolean> {
    if (!this.loopDone) return true;
    if (!this.ac.signal.aborted) {
      this.emit({ state: 'stopping', attempt: this.current.attempt });
      this.ac.abort();
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
    const ended = await Promise.race([this.loopDone.then(() => true as const), timeout]);
    clearTimeout(timer);
    if (!ended) this.opts.logger.error(`${this.opts.name} did not stop within ${Math.round(timeoutMs / 1000)} s`);
    return ended;
  }

  private emit(e: SupervisorEvent): void {
    this.current = e;
    try {
      this.opts.onEvent?.(e);
    } catch (err) {
      this.opts.logger.warn(`cannot record the state of ${this.opts.name}: ${(err as Error).message}`);
    }
  }

  private async loop(): Promise<void> {
    const { clock, logger } = this.opts;
    const signal = this.ac.signal;
    const base = this.opts.baseMs ?? 1000;
    const cap = this.opts.capMs ?? 300_000;
    const healthy = this.opts.healthyMs ?? 60_000;
    let attempt = 0;
    while (!signal.aborted) {
      const started = clock.now().getTime();
      this.emit({ state: 'running', attempt });
      let error: string | undefined;
      try {
        await this.opts.task(signal);
        if (signal.aborted) break;
        logger.warn(`${this.opts.name} ended by itself: restarting it`);
      } catch (err) {
        if (signal.aborted) break;
        error = err instanceof Error ? err.message : String(err);
      }
      if (clock.now().getTime() - started >= healthy) attempt = 0;
      const wait = backoffDelay(attempt, base, cap, this.opts.random);
      attempt++;
      this.delays.push(wait);
      if (error !== undefined) logger.error(`${this.opts.name} failed: ${error}; restart ${attempt} in ${(wait / 1000).toFixed(1)} s`);
      this.emit({ state: 'backoff', attempt, ...(error !== undefined ? { error } : {}), retryInMs: wait });
      await clock.sleep(wait, signal);
    }
    this.emit({ state: 'stopped', attempt });
  }
}
