/*
 * Progress display for long commands: a cli-progress bar on a TTY (bytes done / estimated total,
 * rate, ETA), otherwise periodic log lines. Commands get one `(sample) => void` and a `stop()`.
 */
import cliProgress from 'cli-progress';
import { describeProgress, ProgressTracker, formatClock, type ProgressSample } from '../backup/progress.js';
import type { Logger } from '../log/index.js';

export interface ProgressDisplay {
  update(s: ProgressSample): void;
  stop(): void;
}

function mib(n: number): string {
  return (n / 1048576).toFixed(1);
}

/**
 * `tty`: draw a bar on stderr (the caller decides: a TTY, console format, not quiet);
 * otherwise log a line every `everyMs`.
 */
export function createProgressDisplay(o: { label: string; logger: Logger; tty: boolean; everyMs?: number; verb?: string }): ProgressDisplay {
  const tracker = new ProgressTracker();
  if (!o.tty) {
    let last = Date.now();
    return {
      update(s) {
        const v = tracker.update(s);
        if (Date.now() - last >= (o.everyMs ?? 10_000)) {
          last = Date.now();
          o.logger.info(`${o.label}: ${describeProgress(v, o.verb)}`);
        }
      },
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${o.label} [{bar}] {percentage}% | {doneMiB}/{totalMiB} MiB | {rate} MiB/s | ETA {etaText}`,
      hideCursor: true,
      clearOnComplete: false,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(s) {
      const v = tracker.update(s);
      const total = Math.max(1, v.bytesTotal ?? v.bytesDone);
      const payload = {
        doneMiB: mib(v.bytesDone),
        totalMiB: v.bytesTotal ? mib(v.bytesTotal) : '?',
        rate: mib(v.rate),
        etaText: v.etaSeconds !== null ? formatClock(v.etaSeconds) : '--:--',
      };
      if (!started) {
        bar.start(total, v.bytesDone, payload);
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(v.bytesDone, payload);
      }
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
