// Public API of barmants' configuration: load the INI files into typed, validated settings,
// and render them back (show-servers, README table). Other folders import only from here.

export { loadConfig, defaultConfigPaths, GLOBAL_SECTIONS } from './load.js';
export type { Config, GlobalSettings, ServerConfig, LoadConfigOptions, LogLevelName, SourceRef } from './load.js';
export { parseConninfo, maskConninfo, formatConninfo, quoteConninfoValue, ConninfoSyntaxError } from './conninfo.js';
export {
  OPTIONS,
  HOOK_OPTIONS,
  HOOK_OPERATIONS,
  COMPRESSION_CODECS,
  COMPRESSION_LEVELS,
  LOG_LEVELS,
  LOG_FORMATS,
  findOption,
  parseOptionValue,
  parseBool,
  parseInt10,
  parseSize,
  parseDuration,
  parseCompression,
  parseCompressionLevel,
  compressionLevelFor,
  parseRetention,
  formatRetention,
  parseCron,
  parseEnum,
  parseList,
  parsePath,
  parseListen,
  OptionValueError,
} from './options.js';
export type { OptionSpec, OptionScope, OptionType, OptionValue, Compression, CompressionCodec, RetentionPolicy } from './options.js';
export { parseIni, interpolate } from './ini.js';
export type { IniDocument, IniSection, IniEntry } from './ini.js';
export { showServer, renderOptionsMarkdown } from './show.js';
