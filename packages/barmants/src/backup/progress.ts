/*
 * Progress of a long copy (backup, verify): bytes done against an estimated total, a smoothed
 * rate and an ETA. Pure arithmetic plus a throttled reporter, so a TTY bar and the periodic log
 * lines of a non-interactive run say the same thing.
 */
export interface ProgressSample {
  bytesDone: number;
  bytesTotal: number | null;
}

export interface ProgressView {
  bytesDone: number;
  bytesTotal: number | null;
  /** 0..1, null without a total */
  fraction: number | null;
  /** bytes per second, smoothed */
  rate: number;
  /** seconds left, null when unknown */
  etaSeconds: number | null;
  elapsedSeconds: number;
}

/** Exponentially smoothed rate over samples at least 0.5 s apart. */
export class ProgressTracker {
  private readonly t0: number;
  private lastT: number;
  private lastBytes = 0;
  private rate = 0;
  private view: ProgressView;

  constructor(private readonly now: () => number = Date.now) {
    this.t0 = now();
    this.lastT = this.t0;
    this.view = { bytesDone: 0, bytesTotal: null, fraction: null, rate: 0, etaSeconds: null, elapsedSeconds: 0 };
  }

  update(s: ProgressSample): ProgressView {
    const t = this.now();
    const dt = (t - this.lastT) / 1000;
    if (dt >= 0.5) {
      const inst = Math.max(0, s.bytesDone - this.lastBytes) / dt;
      this.rate = this.rate === 0 ? inst : 0.7 * this.rate + 0.3 * inst;
      this.lastT = t;
      this.lastBytes = s.bytesDone;
    }
    const elapsed = (t - this.t0) / 1000;
    // Early on the smoothed rate is noisy: fall back to the average since the start.
    const rate = this.rate > 0 ? this.rate : elapsed > 0 ? s.bytesDone / elapsed : 0;
    const total = s.bytesTotal !== null && s.bytesTotal > 0 ? Math.max(s.bytesTotal, s.bytesDone) : null;
    this.view = {
      bytesDone: s.bytesDone,
      bytesTotal: total,
      fraction: total ? Math.min(1, s.bytesDone / total) : null,
      rate,
      etaSeconds: total && rate > 0 ? Math.max(0, (total - s.bytesDone) / rate) : null,
      elapsedSeconds: elapsed,
    };
    return this.view;
  }

  get current(): ProgressView {
    return this.view;
  }
}

function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}

function clock(sec: number): string {
  const s = Math.round(sec);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
}

/** "copied 120.0 MiB of 800.0 MiB (15%), 95.3 MiB/s, ETA 00:07" */
export function describeProgress(v: ProgressView, verb = 'copied'): string {
  const of = v.bytesTotal ? ` of ~${mib(v.bytesTotal)} (${Math.floor((v.fraction ?? 0) * 100)}%)` : '';
  const eta = v.etaSeconds !== null ? `, ETA ${clock(v.etaSeconds)}` : '';
  return `${verb} ${mib(v.bytesDone)}${of}, ${mib(v.rate)}/s${eta}`;
}

/** Calls `emit` with a progress line at most every `everyMs` (the non-TTY progress). */
export function periodicProgressLogger(emit: (line: string) => void, everyMs = 10_000, verb = 'copied', now: () => number = Date.now): (s: ProgressSample) => void {
  const tracker = new ProgressTracker(now);
  let last = now();
  return (s) => {
    const v = tracker.update(s);
    if (now() - last >= everyMs) {
      last = now();
      emit(describeProgress(v, verb));
    }
  };
}

export { clock as formatClock };
