/*
 * Check results for people and machines: Barman's console lines, a JSON shape, and a Nagios
 * plugin status line with perfdata and exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
 */
import type { CheckResult, Perfdata, ServerCheckReport } from './types.js';

export const NAGIOS_EXIT = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 } as const;
export type NagiosState = keyof typeof NAGIOS_EXIT;

/** `\tname: OK (detail)`; a WARNING prints as Barman prints its warnings: `OK (WARNING: detail)`. */
export function checkLine(c: CheckResult): string {
  if (c.status === 'WARNING') return `\t${c.name}: OK (WARNING: ${c.detail})`;
  return `\t${c.name}: ${c.status}${c.detail ? ` (${c.detail})` : ''}`;
}

export function renderChecksConsole(reports: ServerCheckReport[]): string[] {
  const out: string[] = [];
  for (const rep of reports) {
    out.push(`Server ${rep.server}:`);
    if (!rep.active) out.push('\tInactive server: skipping failures');
    for (const c of rep.checks) out.push(checkLine(c));
  }
  return out;
}

/** `{srv: {snake_case_check: {status, hint, perfdata?}}}`, Barman's JSON shape plus the status word. */
export function checksJson(reports: ServerCheckReport[]): Record<string, Record<string, { status: string; hint: string; perfdata?: Perfdata[] }>> {
  const out: Record<string, Record<string, { status: string; hint: string; perfdata?: Perfdata[] }>> = {};
  for (const rep of reports) {
    const s: Record<string, { status: string; hint: string; perfdata?: Perfdata[] }> = {};
    for (const c of rep.checks) {
      const key = c.name.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '');
      s[key] = c.perfdata ? { status: c.status, hint: c.detail, perfdata: c.perfdata } : { status: c.status, hint: c.detail };
    }
    out[rep.server] = s;
  }
  return out;
}

/** True when a report has no FAILED check (WARNINGs pass). */
export function reportPasses(rep: ServerCheckReport): boolean {
  return rep.checks.every((c) => c.status !== 'FAILED');
}

function num(n: number | undefined): string {
  return n === undefined ? '' : String(n);
}

/** One perfdata item per the Nagios guidelines: 'label'=value[UOM];[warn];[crit];[min];[max]. */
export function formatPerfdata(server: string, p: Perfdata): string {
  let label = `${server}_${p.label}`;
  if (/[\s'=]/.test(label)) label = `'${label.replace(/'/g, "''")}'`;
  const tail = [num(p.warn), num(p.crit), num(p.min), num(p.max)];
  while (tail.length && tail[tail.length - 1] === '') tail.pop();
  return `${label}=${p.value}${p.uom}${tail.length ? ';' + tail.join(';') : ''}`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function names(reps: ServerCheckReport[], status: 'FAILED' | 'WARNING'): string {
  return reps.map((r) => `${r.server} (${r.checks.filter((c) => c.status === status).map((c) => c.name).join(', ')})`).join(', ');
}

/**
 * The Nagios plugin output: a status line (with perfdata after `|`), then one line per check that
 * is not OK (`srv.check: FAILED (detail)`), as long text. Failures of inactive servers are
 * reported but do not change the state, as Barman's `IGNORING`.
 */
export function renderNagios(reports: ServerCheckReport[]): { state: NagiosState; exitCode: number; lines: string[] } {
  const active = reports.filter((r) => r.active);
  const ignored = reports.filter((r) => !r.active && r.checks.some((c) => c.status !== 'OK'));
  const critical = active.filter((r) => r.checks.some((c) => c.status === 'FAILED'));
  const warning = active.filter((r) => !critical.includes(r) && r.checks.some((c) => c.status === 'WARNING'));
  const perf = reports.flatMap((r) => r.checks.flatMap((c) => (c.perfdata ?? []).map((p) => formatPerfdata(r.server, p))));
  let state: NagiosState;
  let text: string;
  if (reports.length === 0) {
    state = 'OK';
    text = 'No server configured';
  } else if (critical.length) {
    state = 'CRITICAL';
    text = `${plural(critical.length, 'server')} ${critical.length === 1 ? 'has' : 'have'} problems: ${names(critical, 'FAILED')}`;
    if (warning.length) text += `; ${plural(warning.length, 'server')} with warnings: ${names(warning, 'WARNING')}`;
  } else if (warning.length) {
    state = 'WARNING';
    text = `${plural(warning.length, 'server')} ${warning.length === 1 ? 'has' : 'have'} warnings: ${names(warning, 'WARNING')}`;
  } else {
    state = 'OK';
    text = `Ready to serve backups for ${plural(active.length, 'server')}`;
  }
  if (ignored.length) text += ` * IGNORING: ${ignored.map((r) => r.server).join(', ')}`;
  const lines = [`BARMANTS ${state} - ${text}${perf.length ? `|${perf.join(' ')}` : ''}`];
  for (const r of reports) for (const c of r.checks) if (c.status !== 'OK') lines.push(`${r.server}.${c.name}: ${c.status}${c.detail ? ` (${c.detail})` : ''}`);
  return { state, exitCode: NAGIOS_EXIT[state], lines };
}

/** The line printed when checking could not even start (bad configuration, unreadable catalog). */
export function nagiosUnknown(message: string): { state: 'UNKNOWN'; exitCode: 3; lines: string[] } {
  return { state: 'UNKNOWN', exitCode: 3, lines: [`BARMANTS UNKNOWN - ${message.replace(/\s*\n\s*/g, ' ')}`] };
}
