/*
 * When the next scheduled backup is due, from backup_schedule (cron syntax as node-cron takes it:
 * 5 fields, or 6 with seconds first; names for months and weekdays; 7 = Sunday). Status only
 * needs "when next", so this is a plain forward search in local time, no timers.
 */

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

function field(spec: string, min: number, max: number, names?: string[], base = 0): { set: Set<number> } {
  const set = new Set<number>();
  const value = (t: string): number => {
    const i = names?.findIndex((n) => t.toLowerCase().startsWith(n)) ?? -1;
    if (names && i >= 0 && /^[a-z]/i.test(t)) return i + base;
    const n = Number(t);
    if (!Number.isInteger(n)) throw new Error(`invalid cron value '${t}'`);
    return n;
  };
  for (const part of spec.split(',')) {
    const [range, stepText] = part.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw new Error(`invalid cron step '${part}'`);
    let lo = min;
    let hi = max;
    if (range !== '*') {
      const [a, b] = range!.split('-');
      lo = value(a!);
      hi = b === undefined ? (stepText === undefined ? lo : max) : value(b);
    }
    for (let v = lo; v <= hi; v += step) set.add(v);
  }
  return { set };
}

/** The first time strictly after `after` that matches `expr`, or null within a year (or invalid). */
export function nextScheduled(expr: string, after: Date): Date | null {
  let parts = expr.trim().split(/\s+/);
  try {
    if (parts.length === 5) parts = ['0', ...parts];
    if (parts.length !== 6) return null;
    const [sec, min, hour, dom, mon, dow] = parts as [string, string, string, string, string, string];
    const S = field(sec, 0, 59);
    const M = field(min, 0, 59);
    const H = field(hour, 0, 23);
    const D = field(dom, 1, 31);
    const Mo = field(mon, 1, 12, MONTHS, 1);
    const W = field(dow, 0, 7, DAYS);
    if (W.set.has(7)) W.set.add(0);
    const domAny = dom === '*';
    const dowAny = dow === '*';
    const dayOk = (d: Date): boolean => {
      const a = D.set.has(d.getDate());
      const b = W.set.has(d.getDay());
      // Vixie cron: when both are restricted, either may match.
      if (!domAny && !dowAny) return a || b;
      return a && b;
    };
    const t = new Date(after.getTime());
    t.setMilliseconds(0);
    t.setSeconds(t.getSeconds() + 1);
    const limit = after.getTime() + 366 * 86_400_000;
    while (t.getTime() <= limit) {
      if (!Mo.set.has(t.getMonth() + 1) || !dayOk(t)) {
        t.setDate(t.getDate() + 1);
        t.setHours(0, 0, 0);
        continue;
      }
      if (!H.set.has(t.getHours())) {
        t.setHours(t.getHours() + 1, 0, 0);
        continue;
      }
      if (!M.set.has(t.getMinutes())) {
        t.setMinutes(t.getMinutes() + 1, 0);
        continue;
      }
      if (!S.set.has(t.getSeconds())) {
        t.setSeconds(t.getSeconds() + 1);
        continue;
      }
      return t;
    }
    return null;
  } catch {
    return null;
  }
}
