// A small INI reader in Python ConfigParser's dialect (what Barman uses), keeping the file and
// line of every key and section. Hand-written because the INI libraries on npm drop line
// numbers, and every configuration error barmants prints must name file:line.

import { BarmantsError } from '../errors/index.js';

export interface SourceRef {
  file: string;
  line: number;
}

export interface IniEntry extends SourceRef {
  /** Lower-cased, as ConfigParser's optionxform does. */
  key: string;
  /** Raw value: stripped, continuation lines joined with '\n', not yet interpolated. */
  value: string;
}

export interface IniSection extends SourceRef {
  /** Case-sensitive, as in ConfigParser. */
  name: string;
  entries: Map<string, IniEntry>;
}

export interface IniDocument {
  file: string;
  sections: IniSection[];
}

export function at(ref: SourceRef): string {
  return `${ref.file}:${ref.line}`;
}

/**
 * Parses ConfigParser syntax: `[section]`, `key = value` or `key: value` (first delimiter wins,
 * so conninfo values keep their '='), full-line `#`/`;` comments, indented continuation lines.
 * Duplicate sections or keys within a file are errors naming both lines (ConfigParser strict).
 */
export function parseIni(text: string, file: string): IniDocument {
  const doc: IniDocument = { file, sections: [] };
  const byName = new Map<string, IniSection>();
  let section: IniSection | undefined;
  let entry: IniEntry | undefined;
  let entryIndent = 0;
  const lines = text.split(/\r?\n/);

  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = lines[i]!;
    const stripped = raw.trim();
    if (stripped === '') continue; // may sit inside a multi-line value; trailing blanks are never kept
    if (stripped.startsWith('#') || stripped.startsWith(';')) continue;
    const indent = raw.length - raw.trimStart().length;

    if (entry && indent > entryIndent) {
      entry.value = entry.value === '' ? stripped : `${entry.value}\n${stripped}`;
      continue;
    }

    const header = /^\[(.+)\]$/.exec(stripped);
    if (header && indent === 0) {
      const name = header[1]!.trim();
      const previous = byName.get(name);
      if (previous) {
        throw new BarmantsError('config', `${file}:${lineNo}: section [${name}] already defined at line ${previous.line}`);
      }
      section = { name, file, line: lineNo, entries: new Map() };
      byName.set(name, section);
      doc.sections.push(section);
      entry = undefined;
      continue;
    }

    const kv = /^(.*?)\s*[=:]\s*(.*)$/.exec(stripped);
    if (!kv || kv[1] === '') {
      throw new BarmantsError('config', `${file}:${lineNo}: cannot parse line '${stripped}': expected 'key = value', '[section]' or a comment`);
    }
    if (!section) {
      throw new BarmantsError('config', `${file}:${lineNo}: option '${kv[1]}' appears before any [section] header`);
    }
    const key = kv[1]!.toLowerCase();
    const previous = section.entries.get(key);
    if (previous) {
      throw new BarmantsError(
        'config',
        `${file}:${lineNo}: option '${key}' in section [${section.name}] already set at line ${previous.line}`,
      );
    }
    entry = { key, value: kv[2]!, file, line: lineNo };
    entryIndent = indent;
    section.entries.set(key, entry);
  }
  return doc;
}

/**
 * Expands `%(name)s` references (and `%%`) as ConfigParser's BasicInterpolation does. `lookup`
 * returns the raw value of another key, or undefined; references nest up to 10 levels.
 */
export function interpolate(
  value: string,
  where: SourceRef & { key: string; section: string },
  lookup: (name: string) => string | undefined,
  depth = 0,
): string {
  if (depth > 10) {
    throw new BarmantsError(
      'config',
      `${at(where)}: interpolation of option '${where.key}' in section [${where.section}] is nested too deeply (a reference loop?)`,
    );
  }
  let out = '';
  let i = 0;
  while (i < value.length) {
    const pct = value.indexOf('%', i);
    if (pct < 0) {
      out += value.slice(i);
      break;
    }
    out += value.slice(i, pct);
    if (value[pct + 1] === '%') {
      out += '%';
      i = pct + 2;
      continue;
    }
    const ref = /^%\(([^)]+)\)s/.exec(value.slice(pct));
    if (!ref) {
      throw new BarmantsError(
        'config',
        `${at(where)}: invalid value for option '${where.key}' in section [${where.section}]: a '%' must be written '%%' or start a '%(name)s' reference`,
      );
    }
    const name = ref[1]!.toLowerCase();
    const target = lookup(name);
    if (target === undefined) {
      throw new BarmantsError(
        'config',
        `${at(where)}: option '${where.key}' in section [${where.section}] refers to '%(${name})s', which is set neither in [${where.section}], in the global section nor among the built-ins (name, barmants_home, barman_home)`,
      );
    }
    out += interpolate(target, where, lookup, depth + 1);
    i = pct + ref[0].length;
  }
  return out;
}
