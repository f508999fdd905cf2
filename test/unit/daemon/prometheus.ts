// Reading the daemon's /metrics the way Prometheus would: parse-prometheus-text-format (a port of
// the Prometheus Python client's parser), plus lookups by metric name and labels.
import { createRequire } from 'node:module';

export interface Sample {
  value: string;
  labels?: Record<string, string>;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: 'GAUGE' | 'COUNTER' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
  metrics: Sample[];
}

const parse = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => MetricFamily[];

export class Scrape {
  readonly families: Map<string, MetricFamily>;

  constructor(readonly text: string) {
    this.families = new Map(parse(text).map((f) => [f.name, f]));
  }

  family(name: string): MetricFamily {
    const f = this.families.get(name);
    if (!f) throw new Error(`metric ${name} not in the scrape:\n${this.text}`);
    return f;
  }

  /** The value of the sample with exactly these labels (undefined when absent). */
  value(name: string, labels: Record<string, string> = {}): number | undefined {
    const f = this.families.get(name);
    const want = Object.entries(labels);
    const s = f?.metrics.find((m) => {
      const have = m.labels ?? {};
      return Object.keys(have).length === want.length && want.every(([k, v]) => have[k] === v);
    });
    return s === undefined ? undefined : Number(s.value);
  }

  /** The label values of `label` present for a metric. */
  labelValues(name: string, label: string): string[] {
    return [...new Set((this.families.get(name)?.metrics ?? []).map((m) => m.labels?.[label]).filter((v): v is string => v !== undefined))].sort();
  }
}
