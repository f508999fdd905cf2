/*
 * backup_schedule cron expressions: node-cron validates and expands them (5 fields, or 6 with
 * seconds first; names, ranges, steps), and nextRun() computes the next firing time from the
 * expanded sets. node-cron 3 cannot tell when a task will next fire, nor which runs were missed
 * while the daemon was down: both are needed for catch-up, hence our own next-run arithmetic.
 * Semantics follow node-cron's matcher (local time; day-of-month AND day-of-week must match).
 */
import { createRequire } from 'node:module';
import { BarmantsError } from '../errors/index.js';

const nodeRequire = createRequire(import.meta.url);
type Convert = (expression: string) => string;
let convert: Convert | null = null;
let validate: ((expression: string) => boolean) | null = null;

export interface CronSchedule {
  readonly expression: string;
  /** seconds, minutes, hours, days of month, months (1-12), days of week (0-6, Sunday 0) */
  readonly fields: readonly [Set<number>, Set<number>, Set<number>, Set<number>, Set<number>, Set<number>];
}

export function parseSchedule(expression: string): CronSchedule {
  validate ??= (nodeRequire('node-cron') as { validate(e: string): boolean }).validate;
  convert ??= nodeRequire('node-cron/src/convert-expression') as Convert;
  const expr = expression.trim().replace(/\s+/g, ' ');
  if (expr === '' || !validate(expr)) {
    throw new BarmantsError('config', `invalid backup_schedule '${expression}': expected a cron expression such as '0 2 * * *'`);
  }
  const parts = convert(expr).split(' ').map((f) => new Set(f.split(',').map((n) => Number.parseInt(n, 10))));
  if (parts.length !== 6) throw new BarmantsError('config', `invalid backup_schedule '${expression}'`);
  return { expression: expr, fields: parts as unknown as CronSchedule['fields'] };
}

// Far enough for any satisfiable expression (Feb 29 on a given weekday recurs within 28 years).
const MAX_YEARS = 30;

/** The first firing time strictly after `after` (whole seconds, local time); null if never. */
export function nextRun(s: CronSchedule, after: Date): Date | null {
  const [sec, min, hour, dom, mon, dow] = s.fields;
  const t = new Date(after.getTime());
  t.setMilliseconds(0);
  t.setSeconds(t.getSeconds() + 1);
  const limit = after.getFullYear() + MAX_YEARS;
  while (t.getFullYear() <= limit) {
    if (!mon.has(t.getMonth() + 1)) {
      t.setMonth(t.getMonth() + 1, 1);
      t.setHours(0, 0, 0, 0);
      continue;
    }
    if (!dom.has(t.getDate()) || !dow.has(t.getDay())) {
      t.setDate(t.getDate() + 1);
      t.setHours(0, 0, 0, 0);
      continue;
    }
    if (!hour.has(t.getHours())) {
      t.setHours(t.getHours() + 1, 0, 0, 0);
      continue;
    }
    if (!min.has(t.getMinutes())) {
      t.setMinutes(t.getMinutes() + 1, 0, 0);
      continue;
    }
    if (!sec.has(t.getSeconds())) {
      t.setSeconds(t.getSeconds() + 1, 0);
      continue;
    }
    return t;
  }
  return null;
}

/** Firing times in (from, to], at most `limit` of them (counting stops there). */
export function runsBetween(s: CronSchedule, from: Date, to: Date, limit: number): Date[] {
  const out: Date[] = [];
  let t: Date | null = from;
  while (out.length < limit) {
    t = nextRun(s, t);
    if (t === null || t.getTime() > to.getTime()) break;
    out.push(t);
  }
  return out;
}
