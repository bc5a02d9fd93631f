/**
 * One profile's text -> a validated Profile, or every problem in it at once, each with
 * file:line:col. Pure: the caller reads the file.
 */
import TOML from '@iarna/toml';
import type { Problem } from '../errors.js';
import { parsePrefix, type Family, type Prefix } from '../model/prefix.js';
import { namedSet, NAMED_SETS } from '../model/namedSets.js';
import { IFNAME, DEFAULT_FWMARK, DEFAULT_FWMARK_MASK, TAILSCALE_MARK_MASK, WGQUICK_MARK, DEFAULT_PRIORITY, DEFAULT_TABLE, MAIN_RULE_PRIORITY, RESERVED_TABLES, TAILSCALE_LAST_PRIORITY } from '../model/constants.js';
import type { Range } from '../model/rule.js';
import { parseApps } from './apps.js';
import { isGateway, parseFrom } from './from.js';
import { parseProxy, PROXY_INTERFACE, PROXY_PROTOCOLS } from './proxy.js';
import { locate, locateValue } from './locate.js';
import { profileSchema, PROFILE_KEYS } from './schema.js';
import { parseDomainLists } from './domains.js';
import type { PrefixSource, Profile, Protocol } from './types.js';
import { USER_NAME, type UserResolver } from './users.js';


export function profileName(file: string): string {
  const base = file.split('/').pop() ?? file;
  return base.replace(/\.toml$/, '');
}

export interface ParseResult {
  profile?: Profile;
  problems: Problem[];
}

export interface ParseOptions {
  /**
   * Turns a user name in `uids` into a uid (load.ts passes getent's, tests a fake). Without
   * one, names are a problem: parsing stays pure, and nothing is guessed.
   */
  resolveUser?: UserResolver;
}

export function parseProfile(file: string, text: string, opts: ParseOptions = {}): ParseResult {
  const problems: Problem[] = [];
  const at = (message: string, key?: string, index?: number) => {
    const p = locate(text, key, index);
    problems.push({ file, line: p.line, col: p.col, message });
  };
  const atValue = (message: string, key: string) => {
    const p = locateValue(text, key);
    problems.push({ file, line: p.line, col: p.col, message });
  };

  let doc: Record<string, unknown>;
  try {
    doc = TOML.parse(text) as Record<string, unknown>;
  } catch (e) {
    const err = e as { line?: number; col?: number; message?: string };
    // @iarna/toml: 0-based line; the column is 0-based too except on the first line, where
    // it is already 1-based (its counter starts at 0 and is bumped before the first char).
    // The message has a code frame after the first line.
    const first = String(err.message ?? e).split('\n')[0].replace(/ at row \d+, col \d+, pos \d+:?$/, '');
    const line = err.line ?? 0;
    problems.push({ file, line: line + 1, col: (err.col ?? 0) + (line === 0 ? 0 : 1), message: `TOML syntax: ${first}` });
    return { problems };
  }

  const parsed = profileSchema.safeParse(doc);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const [key, index] = issue.path as [string?, number?];
      if (issue.code === 'unrecognized_keys') {
        for (const k of issue.keys) {
          const hint = nearest(k, PROFILE_KEYS);
          const pos = locateKey(text, k);
          problems.push({
            file,
            line: pos.line,
            col: pos.col,
            message: `unknown key "${k}"${hint ? ` (did you mean "${hint}"?)` : ''}; known keys: ${PROFILE_KEYS.join(', ')}`,
          });
        }
      } else if (key === undefined) {
        at(issue.message);
      } else if (issue.code === 'invalid_type' && issue.received === 'undefined') {
        at(issue.message);
      } else if (index !== undefined) {
        at(`${key}[${index}]: ${describeType(issue)}`, key, index);
      } else {
        atValue(`${key}: ${describeType(issue)}`, key);
      }
    }
    return { problems };
  }
  const raw = parsed.data;

  if (raw.interface === undefined && raw.proxy_port === undefined) at('missing required key "interface" (the WireGuard interface, e.g. "wg0"), or proxy_port for a local transparent proxy');
  const iface = raw.interface ?? PROXY_INTERFACE;
  if (raw.interface !== undefined && !IFNAME.test(raw.interface)) at(`interface "${raw.interface}" is not a valid interface name (1-15 characters, no "/" or spaces)`, 'interface');

  const table = raw.table ?? DEFAULT_TABLE;
  if (table < 0 || table > 0xffffffff) atValue(`table ${table} is out of range (1-4294967295)`, 'table');
  else if (RESERVED_TABLES[table] !== undefined) atValue(`table ${table} is reserved: ${RESERVED_TABLES[table]}`, 'table');

  const priority = raw.priority ?? DEFAULT_PRIORITY;
  if (priority <= 0) atValue(`priority ${priority} is invalid: 0 is the kernel's "lookup local" rule; use ${TAILSCALE_LAST_PRIORITY + 1}-${MAIN_RULE_PRIORITY - 1}`, 'priority');
  else if (priority <= TAILSCALE_LAST_PRIORITY)
    atValue(
      `priority ${priority} would land before tailscale's rules (5210-${TAILSCALE_LAST_PRIORITY}) and steal its traffic; use ${TAILSCALE_LAST_PRIORITY + 1}-${MAIN_RULE_PRIORITY - 1}`,
      'priority',
    );
  else if (priority >= MAIN_RULE_PRIORITY)
    atValue(`priority ${priority} is at or after the main table's rule (${MAIN_RULE_PRIORITY}) and would never divert anything; use ${TAILSCALE_LAST_PRIORITY + 1}-${MAIN_RULE_PRIORITY - 1}`, 'priority');

  let protocols: Protocol[] | undefined;
  if (raw.protocols !== undefined) {
    const seen = new Set<string>();
    raw.protocols.forEach((p, i) => {
      if (!['tcp', 'udp', 'icmp', 'all'].includes(p)) at(`protocols[${i}]: unknown protocol "${p}" (use tcp, udp, icmp or all)`, 'protocols', i);
      else if (seen.has(p)) at(`protocols[${i}]: "${p}" is listed twice`, 'protocols', i);
      seen.add(p);
    });
    if (raw.protocols.length === 0) atValue('protocols is empty: list at least one of tcp, udp, icmp, all (or remove the key for all)', 'protocols');
    if (seen.has('all') && seen.size > 1) atValue('protocols: "all" cannot be combined with other protocols', 'protocols');
    if (!seen.has('all')) protocols = raw.protocols.filter((p) => ['tcp', 'udp', 'icmp'].includes(p)) as Protocol[];
  }

  const families = parseFamilies(raw.families, at, atValue);
  // include_files (or include_domains) alone means "only these": the everything-default
  // applies when none is set.
  const include = parsePrefixList('include', raw.include ?? (raw.include_files || raw.include_domains ? [] : ['0.0.0.0/0', '::/0']), raw.include !== undefined, at);
  for (const key of ['include_files', 'exclude_files'] as const) {
    (raw[key] ?? []).forEach((f, i) => {
      if (!f || f.includes('\0')) at(`${key}[${i}]: not a file name`, key, i);
    });
  }
  const exclude = parsePrefixList('exclude', raw.exclude ?? ['@private'], raw.exclude !== undefined, at);
  if (raw.include !== undefined && raw.include.length === 0) atValue('include is empty: nothing would go through the tunnel (remove the key for everything)', 'include');

  const dports = parseRanges('dports', raw.dports, 1, 65535, at);
  const sports = parseRanges('sports', raw.sports, 1, 65535, at);
  const uids = parseRanges('uids', raw.uids, 0, 4294967294, at, opts.resolveUser ?? noResolver);
  // On the raw lists: a malformed port must not hide this problem (every problem at once).
  if ((raw.dports?.length || raw.sports?.length) && (protocols === undefined || protocols.some((p) => p === 'icmp'))) {
    atValue('ports only exist for tcp and udp: with dports or sports, set protocols to ["tcp"], ["udp"] or both', raw.dports ? 'dports' : 'sports');
  }

  const mode = raw.mode ?? 'auto';
  if (!['auto', 'rule', 'fwmark'].includes(mode)) atValue(`mode must be "auto", "rule" or "fwmark", not "${mode}"`, 'mode');
  const fwmark = raw.fwmark ?? DEFAULT_FWMARK;
  const fwmarkMask = raw.fwmark_mask ?? DEFAULT_FWMARK_MASK;
  const hex = (n: number) => '0x' + n.toString(16);
  if (fwmarkMask <= 0 || fwmarkMask > 0xffffffff) atValue(`fwmark_mask ${hex(fwmarkMask)} must be a non-zero 32-bit mask`, 'fwmark_mask');
  else if (fwmarkMask & TAILSCALE_MARK_MASK) atValue(`fwmark_mask ${hex(fwmarkMask)} overlaps tailscale's mark bits (0xff0000)`, 'fwmark_mask');
  else if (fwmarkMask & WGQUICK_MARK) atValue(`fwmark_mask ${hex(fwmarkMask)} overlaps wg-quick's fwmark 51820 (0xca6c)`, 'fwmark_mask');
  if (fwmark <= 0 || fwmark > 0xffffffff) atValue(`fwmark ${hex(fwmark)} must be a non-zero 32-bit value`, raw.fwmark !== undefined ? 'fwmark' : 'fwmark_mask');
  else if (fwmark & ~fwmarkMask) atValue(`fwmark ${hex(fwmark)} has bits outside fwmark_mask ${hex(fwmarkMask)}`, raw.fwmark !== undefined ? 'fwmark' : 'fwmark_mask');

  const onDown = raw.on_down ?? 'block';
  if (onDown !== 'block' && onDown !== 'direct') atValue(`on_down must be "block" or "direct", not "${onDown}"`, 'on_down');

  const { apps, excludeApps } = parseApps(raw, at, atValue);
  const domains = parseDomainLists(raw.include_domains, raw.exclude_domains, (m, key, i) => (i === undefined ? atValue(m, key) : at(m, key, i)));
  if ((domains.include.length || domains.exclude.length) && mode === 'rule') {
    atValue('mode = "rule" cannot match include_domains / exclude_domains: their addresses are learned at run time into nftables sets and matched by mark; remove mode (auto) or use "fwmark"', 'mode');
  }
  if ((domains.include.length || domains.exclude.length) && (apps !== undefined || excludeApps !== undefined)) {
    atValue('apps / exclude_apps and include_domains / exclude_domains cannot be combined in one profile yet; use two profiles (each with its own table, priority and fwmark)', raw.include_domains ? 'include_domains' : 'exclude_domains');
  }
  const from = parseFrom(raw.from, iface, at, atValue);
  if (uids.length && raw.from !== undefined && !from.host) atValue('uids select the host\'s own processes, and from has no "host": forwarded packets carry no uid (add "host" to from, or remove uids)', 'uids');
  const proxied = parseProxy(raw, { from, families, protocols, fwmark, fwmarkMask, at, atValue, ranges: (key, list, min, max, at) => parseRanges(key, list, min, max, at, opts.resolveUser ?? noResolver) });
  if (raw.masquerade !== undefined && !isGateway(from) && raw.proxy_port === undefined) atValue('masquerade applies to forwarded traffic only: from lists no interface or source prefix', 'masquerade');

  if (problems.length) return { problems };
  return {
    problems,
    profile: {
      name: profileName(file),
      file,
      interface: iface,
      table,
      priority,
      protocols,
      include,
      exclude,
      includeFiles: raw.include_files ?? [],
      excludeFiles: raw.exclude_files ?? [],
      dports,
      sports,
      uids,
      families,
      onDown: onDown as 'block' | 'direct',
      excludeConnected: raw.exclude_connected ?? true,
      mode: mode as Profile['mode'],
      fwmark,
      fwmarkMask,
      description: raw.description,
      ...(apps !== undefined && { apps }),
      ...(excludeApps !== undefined && { excludeApps }),
      includeDomains: domains.include,
      excludeDomains: domains.exclude,
      from,
      masquerade: raw.masquerade ?? true,
      counters: raw.counters ?? true,
      ...(proxied.proxy ? { proxy: proxied.proxy, protocols: protocols ?? PROXY_PROTOCOLS, families: proxied.families, masquerade: false } : {}),
    },
  };
}

type At = (message: string, key?: string, index?: number) => void;

function parseFamilies(list: string[] | undefined, at: At, atValue: (m: string, k: string) => void): Family[] | undefined {
  if (list === undefined) return undefined;
  const out: Family[] = [];
  list.forEach((f, i) => {
    const fam = f === 'ipv4' || f === 'inet' ? 4 : f === 'ipv6' || f === 'inet6' ? 6 : undefined;
    if (fam === undefined) at(`families[${i}]: unknown family "${f}" (use "ipv4" or "ipv6")`, 'families', i);
    else if (out.includes(fam)) at(`families[${i}]: "${f}" is listed twice`, 'families', i);
    else out.push(fam);
  });
  if (list.length === 0) atValue('families is empty: list "ipv4", "ipv6" or both (or remove the key for every family the interface has)', 'families');
  return out;
}

function parsePrefixList(key: string, list: string[], explicit: boolean, at: At): PrefixSource[] {
  const out: PrefixSource[] = [];
  list.forEach((text, i) => {
    const here = (m: string) => (explicit ? at(`${key}[${i}]: ${m}`, key, i) : at(`${key}: ${m}`));
    if (text.startsWith('@')) {
      const set = namedSet(text.slice(1));
      if (!set) {
        const hint = nearest(text.slice(1), Object.keys(NAMED_SETS));
        here(`unknown named set "${text}"${hint ? ` (did you mean "@${hint}"?)` : ''}; known: ${Object.keys(NAMED_SETS).map((n) => '@' + n).join(', ')}`);
        return;
      }
      out.push({ text, prefixes: set.prefixes.map((p) => (parsePrefix(p) as { ok: true; prefix: Prefix }).prefix) });
      return;
    }
    const r = parsePrefix(text.trim());
    if (!r.ok) here(r.reason);
    else out.push({ text, prefixes: [r.prefix] });
  });
  return out;
}

const noResolver: UserResolver = () => ({ error: 'user names cannot be resolved here' });

function parseRanges(key: string, list: (number | string)[] | undefined, min: number, max: number, at: At, users?: UserResolver): Range[] {
  if (!list) return [];
  const out: Range[] = [];
  list.forEach((v, i) => {
    const bad = (m: string) => at(`${key}[${i}]: ${m}`, key, i);
    let start: number, end: number;
    if (typeof v === 'number') {
      start = end = v;
    } else {
      const m = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(v) ?? /^\s*(\d+)\s*$/.exec(v);
      if (!m && users && USER_NAME.test(v)) {
        const u = users(v);
        if (u === undefined) return bad(`unknown user "${v}" (getent passwd ${v} finds no such user)`);
        if ('error' in u) return bad(`cannot look up user "${v}": ${u.error}`);
        out.push({ start: u.uid, end: u.uid });
        return;
      }
      if (!m) return bad(`${JSON.stringify(v)} is not a ${users ? 'uid, a user name' : 'number'} or a range "a-b"`);
      start = Number(m[1]);
      end = Number(m[2] ?? m[1]);
    }
    if (!Number.isInteger(start) || start < min || end > max) return bad(`${JSON.stringify(v)} is out of range (${min}-${max})`);
    if (end < start) return bad(`range "${v}" ends before it starts`);
    out.push({ start, end });
  });
  return out;
}

function describeType(issue: { message: string; code: string; expected?: unknown; received?: unknown }): string {
  if (issue.code === 'invalid_type') return `expected ${issue.expected}, got ${issue.received}`;
  if (issue.code === 'invalid_union') return 'expected a number or a "a-b" range string';
  return issue.message;
}

/** Where a top-level key is defined: `k = ...`, `k.x = ...`, `[k]`, `[k.x]` or `[[k]]`. */
function locateKey(text: string, key: string) {
  const esc = key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^([ \\t]*(?:\\[\\[?[ \\t]*)?)(?:${esc}|"${esc}"|'${esc}')[ \\t]*[=.\\]]`, 'm').exec(text);
  if (!m) return { line: 1, col: 1 };
  return { line: text.slice(0, m.index).split('\n').length, col: m[1].length + 1 };
}

/** The closest known name within edit distance 2, for "did you mean" hints. */
function nearest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      dp[i][j] = Math.min(dp[i - 1][j] + 1, dp[i][j - 1] + 1, dp[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return dp[a.length][b.length];
}
