// Results of the benchmark: the alternating A/B runner, per-contender summaries (median, min–max),
// pair-by-pair ratios, the printed table and the JSON file under bench/results/.
// A contender that fails keeps its slot in the pair as "failed: reason"; the others go on.

import { execFileSync } from 'node:child_process';
import { mkdirSync, statfsSync, writeFileSync } from 'node:fs';
import { cpus, hostname, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { median, minMax } from './measure.js';

export type Metrics = Record<string, number | null>;

export interface Run {
  round: number;
  ok: boolean;
  error?: string;
  metrics: Metrics;
}

export interface Contender {
  name: string;
  /** the command as run, for the reader of the JSON */
  command: string;
  runs: Run[];
}

export interface MetricSpec {
  key: string;
  label: string;
  unit: string;
  digits: number;
}

export interface Comparison {
  section: string;
  title: string;
  metrics: MetricSpec[];
  /** contenders[baseline] is the denominator of every ratio */
  baseline: number;
  /** metrics compared pair by pair (contender / baseline, same round) */
  ratioMetrics: string[];
  contenders: Contender[];
}

export interface Measurement {
  section: string;
  name: string;
  unit: string;
  values: number[];
  note?: string;
}

export interface BenchResults {
  startedAt: string;
  finishedAt?: string;
  options: Record<string, unknown>;
  machine: Record<string, unknown>;
  cluster?: Record<string, unknown>;
  comparisons: Comparison[];
  measurements: Measurement[];
  skipped: { section: string; reason: string }[];
  notes: string[];
}

export interface ContenderSpec {
  name: string;
  command: string;
  /** round 0, 1, …; negative for warm-up rounds */
  run: (round: number) => Promise<Metrics>;
  /** runs after every attempt, success or not: delete outputs so the next run starts clean */
  cleanup?: () => Promise<void>;
}

/**
 * Runs the contenders in turn, round after round (A B A B …), so drift of the machine (page cache,
 * other load, thermal) hits every contender alike. Each round's results stay paired for the ratios.
 *
 * `warmup` rounds run first and are not recorded. On this VM (Firecracker with virtio-balloon free
 * page reporting) memory freed a few seconds earlier goes back to the host, and the next process
 * to write that much pays a host fault per page: the first contender after a pause (the fixtures,
 * another section) ran 1.5-2.4x slower than in its later rounds, whoever it was.
 */
export async function alternate(
  base: Omit<Comparison, 'contenders'>,
  specs: ContenderSpec[],
  rounds: number,
  log: (s: string) => void,
  warmup = 1,
): Promise<Comparison> {
  for (let w = 0; w < warmup; w++) {
    for (const spec of specs) {
      try {
        await spec.run(-1 - w);
        log(`  ${base.title} · ${spec.name} · warm-up (not counted)`);
      } catch (e) {
        log(`  ${base.title} · ${spec.name} · warm-up failed: ${oneLine((e as Error).message)}`);
      } finally {
        await spec.cleanup?.().catch((e: Error) => log(`  cleanup after ${spec.name}: ${e.message}`));
      }
    }
  }
  const contenders: Contender[] = specs.map((s) => ({ name: s.name, command: s.command, runs: [] }));
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i]!;
      let run: Run;
      try {
        run = { round, ok: true, metrics: await spec.run(round) };
        log(`  ${base.title} · ${spec.name} · round ${round + 1}: ${briefMetrics(base.metrics, run.metrics)}`);
      } catch (e) {
        run = { round, ok: false, error: oneLine((e as Error).message), metrics: {} };
        log(`  ${base.title} · ${spec.name} · round ${round + 1}: failed: ${run.error}`);
      } finally {
        await spec.cleanup?.().catch((e: Error) => log(`  cleanup after ${spec.name}: ${e.message}`));
      }
      contenders[i]!.runs.push(run);
    }
  }
  return { ...base, contenders };
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim().slice(0, 300);
}

function briefMetrics(specs: MetricSpec[], m: Metrics): string {
  return specs
    .filter((s) => m[s.key] !== undefined && m[s.key] !== null)
    .map((s) => `${s.label} ${fmt(m[s.key]!, s.digits)}${s.unit ? ' ' + s.unit : ''}`)
    .join(', ');
}

function fmt(x: number, digits: number): string {
  return x.toFixed(digits);
}

export interface Summary {
  median: number | null;
  min: number | null;
  max: number | null;
  n: number;
}

export function summarize(values: number[]): Summary {
  const mm = minMax(values);
  return { median: median(values), min: mm?.[0] ?? null, max: mm?.[1] ?? null, n: values.length };
}

export function metricValues(c: Contender, key: string): number[] {
  return c.runs.filter((r) => r.ok && typeof r.metrics[key] === 'number').map((r) => r.metrics[key] as number);
}

/** contender / baseline per round where both succeeded and the baseline is non-zero. */
export function pairRatios(cmp: Comparison, contender: number, key: string): number[] {
  const base = cmp.contenders[cmp.baseline]!;
  const out: number[] = [];
  for (const r of cmp.contenders[contender]!.runs) {
    const b = base.runs.find((x) => x.round === r.round);
    const a = r.ok ? r.metrics[key] : null;
    const d = b?.ok ? b.metrics[key] : null;
    if (typeof a === 'number' && typeof d === 'number' && d !== 0) out.push(a / d);
  }
  return out;
}

// ------------------------------------------------------------------ the printed table

function cell(s: Summary, digits: number, f: (x: number, d: number) => string = fmt): string {
  if (s.n === 0 || s.median === null) return '—';
  if (s.n === 1) return f(s.median, digits);
  return `${f(s.median, digits)} (${f(s.min!, digits)}–${f(s.max!, digits)})`;
}

/** Ratios far below 1 (lag against a 10 s status interval) keep two significant digits. */
function fmtRatio(x: number): string {
  return x === 0 || Math.abs(x) >= 0.1 ? x.toFixed(2) : x.toPrecision(2);
}

function renderGrid(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function renderComparison(cmp: Comparison): string {
  const header = ['contender', 'ok', ...cmp.metrics.map((m) => `${m.label}${m.unit ? ` [${m.unit}]` : ''}`)];
  for (const k of cmp.ratioMetrics) header.push(`ratio ${cmp.metrics.find((m) => m.key === k)?.label ?? k}`);
  const rows: string[][] = [];
  cmp.contenders.forEach((c, i) => {
    const ok = c.runs.filter((r) => r.ok).length;
    const row = [c.name, `${ok}/${c.runs.length}`, ...cmp.metrics.map((m) => cell(summarize(metricValues(c, m.key)), m.digits))];
    for (const k of cmp.ratioMetrics) {
      if (i === cmp.baseline) row.push('1 (baseline)');
      else {
        const r = pairRatios(cmp, i, k);
        row.push(r.length === 0 ? '—' : `${cell(summarize(r), 2, fmtRatio)} [${r.map(fmtRatio).join(' ')}]`);
      }
    }
    rows.push(row);
  });
  const failures = cmp.contenders.flatMap((c) => c.runs.filter((r) => !r.ok).map((r) => `  ${c.name} round ${r.round + 1} failed: ${r.error}`));
  return [`## ${cmp.title}`, renderGrid(header, rows), ...failures].join('\n');
}

export function renderMeasurements(ms: Measurement[]): string {
  const rows = ms.map((m) => [m.section, m.name, cell(summarize(m.values), m.unit === 'ms' ? 1 : 2), m.unit, m.note ?? '']);
  return renderGrid(['section', 'measurement', 'median (min–max)', 'unit', 'note'], rows);
}

export function renderAll(res: BenchResults): string {
  const parts = res.comparisons.map(renderComparison);
  if (res.measurements.length > 0) parts.push(`## single-contender measurements\n${renderMeasurements(res.measurements)}`);
  if (res.skipped.length > 0) parts.push(`## skipped\n${res.skipped.map((s) => `  ${s.section}: ${s.reason}`).join('\n')}`);
  if (res.notes.length > 0) parts.push(`## notes\n${res.notes.map((n) => `  - ${n}`).join('\n')}`);
  return parts.join('\n\n');
}

// ------------------------------------------------------------------ machine and JSON file

export function describeMachine(workDir: string): Record<string, unknown> {
  const cpu = cpus();
  let diskFreeBytes: number | null = null;
  try {
    const s = statfsSync(workDir);
    diskFreeBytes = s.bavail * s.bsize;
  } catch {
    /* unknown */
  }
  let fsType: string | null = null;
  try {
    fsType = execFileSync('stat', ['-f', '-c', '%T', workDir], { encoding: 'utf8' }).trim();
  } catch {
    /* unknown */
  }
  let loadavg: string | null = null;
  try {
    loadavg = execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).trim();
  } catch {
    /* unknown */
  }
  return {
    hostname: hostname(),
    cpuModel: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memoryBytes: totalmem(),
    kernel: release(),
    node: process.version,
    workDir,
    workDirFs: fsType,
    diskFreeBytes,
    loadavgAtStart: loadavg,
  };
}

export function writeResults(repoRoot: string, res: BenchResults): string {
  const dir = join(repoRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const date = res.startedAt.slice(0, 10);
  const host = String(res.machine.hostname ?? 'host').replace(/[^A-Za-z0-9_.-]/g, '_');
  const file = join(dir, `${date}-${host}.json`);
  // bigint never reaches here: metrics are numbers.
  writeFileSync(file, JSON.stringify(res, null, 2) + '\n');
  return file;
}
