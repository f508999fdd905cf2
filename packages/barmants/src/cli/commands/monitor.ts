/*
 * Monitoring commands: check (console, JSON, --nagios), status and diagnose. Thin: they gather
 * facts through checks/, and render. `check --nagios` never fails like other commands: a broken
 * configuration or catalog still prints one `BARMANTS UNKNOWN - ...` line and exits 3.
 */
import { readFileSync, statSync } from 'node:fs';
import { arch, hostname, platform, release, type as osType } from 'node:os';
import type { Catalog } from '../../catalog/index.js';
import { showServer, type ServerConfig } from '../../config/index.js';
import {
  buildStatus, checksJson, gatherAll, nagiosUnknown, renderChecksConsole, renderNagios, reportPasses, runChecks, statusLines,
} from '../../checks/index.js';
import { BarmantsError } from '../../errors/index.js';
import { redactSecrets } from '../../log/index.js';
import { result, toJson, type CommandResult } from '../../output/index.js';
import type { Context } from '../context.js';
import type { CommandSpec } from './spec.js';

const VERSION: string = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function check(args: Record<string, any>, ctx: Context): Promise<CommandResult> {
  const nagios = Boolean(args.nagios);
  const timeoutSec = args['check-timeout'] === undefined ? undefined : Number(args['check-timeout']);
  if (timeoutSec !== undefined && !(timeoutSec > 0)) {
    if (nagios) return unknown(ctx, `--check-timeout must be a positive number of seconds`);
    throw new BarmantsError('usage', '--check-timeout must be a positive number of seconds');
  }
  let servers: ServerConfig[];
  let catalog: Catalog | null = null;
  try {
    servers = ctx.servers(args.servers as string[]);
  } catch (err) {
    if (nagios) return unknown(ctx, message(err));
    throw err;
  }
  try {
    catalog = ctx.catalog();
  } catch (err) {
    if (nagios) return unknown(ctx, `catalog unreadable: ${message(err)}`);
    // Console: every server's checks still run; each gets a FAILED `catalog` line.
  }
  const { reports } = await runChecks({ servers, layout: (s) => ctx.layout(s), catalog, timeoutSec });
  if (nagios) {
    const n = renderNagios(reports);
    ctx.args.format = 'console'; // Nagios reads plain text, whatever -f says
    return result({ state: n.state }, n.lines, n.exitCode);
  }
  const ok = reports.every(reportPasses);
  return result(checksJson(reports), renderChecksConsole(reports), ok ? 0 : 1);
}

function unknown(ctx: Context, msg: string): CommandResult {
  const n = nagiosUnknown(redactSecrets(msg));
  ctx.args.format = 'console';
  return result({ state: n.state }, n.lines, n.exitCode);
}

async function status(args: Record<string, any>, ctx: Context): Promise<CommandResult> {
  const servers = ctx.servers(args.servers as string[]);
  const catalog = ctx.catalog();
  const facts = await gatherAll({ servers, layout: (s) => ctx.layout(s), catalog });
  const data: Record<string, unknown> = {};
  const text: string[] = [];
  facts.forEach((f, i) => {
    const s = buildStatus(f, servers[i]!);
    data[s.server] = s;
    text.push(`Server ${s.server}:`, ...statusLines(s, f.now));
  });
  return result(data, text);
}

function catalogStats(catalog: Catalog, name: string): Record<string, unknown> {
  const backups = catalog.listBackups(name);
  const byStatus: Record<string, number> = {};
  for (const b of backups) byStatus[b.status] = (byStatus[b.status] ?? 0) + 1;
  return {
    registered: catalog.getServer(name) !== null,
    backups: backups.length,
    backups_by_status: byStatus,
    wal_segments: catalog.countWalSegments(name),
    wal_size_bytes: catalog.walSize(name),
    first_wal: catalog.firstWalSegment(name)?.name ?? null,
    last_wal: catalog.lastWalSegment(name)?.name ?? null,
    timelines: catalog.listTimelines(name),
    history_files: catalog.listHistoryFiles(name).length,
  };
}

async function diagnose(_args: Record<string, any>, ctx: Context): Promise<CommandResult> {
  const cfg = ctx.config;
  const servers = [...cfg.servers.values()];
  let catalog: Catalog | null = null;
  let catalogError: string | null = null;
  try {
    catalog = ctx.catalog();
  } catch (err) {
    catalogError = message(err);
  }
  const { reports, facts } = await runChecks({ servers, layout: (s) => ctx.layout(s), catalog });
  const serversOut: Record<string, unknown> = {};
  servers.forEach((s, i) => {
    serversOut[s.name] = {
      config: Object.fromEntries(showServer(s)),
      status: buildStatus(facts[i]!, s),
      checks: reports[i]!.checks,
      catalog: catalog ? catalogStats(catalog, s.name) : null,
    };
  });
  let catalogFile: Record<string, unknown> = { error: catalogError };
  if (catalog) {
    let size: number | null = null;
    try {
      size = statSync(catalog.path).size;
    } catch {
      /* reported as null */
    }
    catalogFile = { path: catalog.path, schema_version: catalog.schemaVersion(), size_bytes: size };
  }
  const doc = {
    barmants: { version: VERSION },
    node: { version: process.version, versions: { v8: process.versions.v8, uv: process.versions.uv, openssl: process.versions.openssl } },
    os: { type: osType(), platform: platform(), release: release(), arch: arch(), hostname: hostname() },
    generated_at: new Date().toISOString(),
    config: {
      files: cfg.files,
      global: Object.fromEntries(Object.entries(cfg.global).filter(([k]) => k !== 'source').map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), v])),
      warnings: cfg.warnings,
      notes: cfg.notes,
    },
    catalog: catalogFile,
    servers: serversOut,
  };
  // Safe to paste: conninfo is already masked by showServer; redact anything else that slipped in.
  const text = redactSecrets(toJson(doc));
  return result(JSON.parse(text), text);
}

export const monitorCommands: CommandSpec[] = [
  {
    command: 'check <servers..>',
    describe: 'check that servers are ready for backups and WAL streaming (SRV… or all)',
    builder: (y) =>
      y
        .option('nagios', { type: 'boolean', default: false, describe: 'Nagios plugin output and exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)' })
        .option('check-timeout', { type: 'number', describe: "seconds allowed per server (overrides check_timeout)" }),
    handler: check,
  },
  {
    command: 'status <servers..>',
    describe: 'show the live status of servers (SRV… or all)',
    handler: status,
  },
  {
    command: 'diagnose',
    describe: 'print one JSON document describing this installation, safe to paste in a bug report',
    handler: diagnose,
  },
];
