/*
 * What every command needs, opened lazily: the configuration, a logger scoped to the command,
 * the catalog and each server's repository layout. Commands receive a Context and return a
 * CommandResult; they never print directly (except progress on a TTY).
 */
import { mkdirSync } from 'node:fs';
import { Catalog } from '../catalog/index.js';
import { loadConfig, type Config, type ServerConfig } from '../config/index.js';
import { BarmantsError } from '../errors/index.js';
import { createLogger, type Logger } from '../log/index.js';
import type { OutputFormat } from '../output/index.js';
import { ServerLayout, catalogPath } from '../repository/layout.js';

export interface GlobalArgs {
  config?: string;
  format: OutputFormat;
  quiet: boolean;
  debug: boolean;
}

export class Context {
  readonly args: GlobalArgs;
  private cfg: Config | null = null;
  private cat: Catalog | null = null;
  private log: Logger | null = null;
  /** set by signal handlers: long-running commands poll it */
  readonly abort = new AbortController();

  constructor(args: GlobalArgs) {
    this.args = args;
  }

  get config(): Config {
    if (!this.cfg) {
      this.cfg = loadConfig({ path: this.args.config });
      for (const w of this.cfg.warnings) this.logger.warn(w);
    }
    return this.cfg;
  }

  get home(): string {
    return this.config.global.barmantsHome;
  }

  get logger(): Logger {
    if (!this.log) {
      // The config may not be loadable yet (that is what we might be reporting): log to stderr until it is.
      const g = this.cfg?.global;
      this.log = createLogger({
        level: this.args.debug ? 'DEBUG' : this.args.quiet ? 'WARNING' : (g?.logLevel ?? 'INFO'),
        file: g?.logFile ?? null,
        json: g?.logFormat === 'json',
        console: true,
      });
    }
    return this.log;
  }

  /** The catalog, opened on first use (the home directory is created 0700 if missing). */
  catalog(): Catalog {
    if (!this.cat) {
      mkdirSync(this.home, { recursive: true, mode: 0o700 });
      this.cat = Catalog.open(catalogPath(this.home));
    }
    return this.cat;
  }

  server(name: string): ServerConfig {
    const s = this.config.servers.get(name);
    if (!s) {
      const known = [...this.config.servers.keys()];
      throw new BarmantsError('notFound', `unknown server '${name}'`, {
        hint: known.length ? `configured servers: ${known.join(', ')}` : `no server is configured in ${this.config.files.join(', ') || 'any configuration file'}`,
      });
    }
    return s;
  }

  /** Expands `all` and checks every name. */
  servers(names: string[]): ServerConfig[] {
    if (names.length === 1 && names[0] === 'all') return [...this.config.servers.values()];
    return names.map((n) => this.server(n));
  }

  layout(server: ServerConfig | string): ServerLayout {
    const s = typeof server === 'string' ? this.server(server) : server;
    return new ServerLayout(this.home, s.name, s.backupDirectory ?? undefined);
  }

  async close(): Promise<void> {
    this.cat?.close();
    this.cat = null;
    await this.log?.close();
  }
}
