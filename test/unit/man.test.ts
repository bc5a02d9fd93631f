/**
 * The man pages and shell completion cannot silently fall behind the code:
 *  - both pages render without a single warning (`man --warnings`, `groff -ww`) when those
 *    programs are installed;
 *  - every command has its own entry in wgsplit(8), every option it accepts is an item of
 *    that entry (or of GLOBAL OPTIONS), and no entry names an option the CLI does not have;
 *  - every profile key is an item of KEYS in wgsplit.toml(5) with its real default, and
 *    every named set is listed with all its prefixes; exit codes, environment variables and
 *    the protocol tag are documented;
 *  - every metric name is an item of METRICS in wgsplit(8);
 *  - bash completion offers exactly the commands and each command's options, and the zsh
 *    completion names them all.
 * Which options a command accepts is asked of parseCli itself, so nothing here restates it.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { COMMANDS, parseCli } from '../../src/cli/args.js';
import { EXIT_DRIFT, EXIT_INPUT, EXIT_KERNEL, EXIT_OK } from '../../src/cli/exitCodes.js';
import { DEFAULT_FWMARK, DEFAULT_FWMARK_MASK, DEFAULT_PRIORITY, DEFAULT_TABLE, PROTOCOL_TAG, RESERVED_TABLES } from '../../src/model/constants.js';
import { NAMED_SETS } from '../../src/model/namedSets.js';
import { profileSchema } from '../../src/profile/schema.js';
import { METRIC_NAMES } from '../../src/metrics/prometheus.js';
import { REPO_ROOT } from '../helpers/unit.js';

const PAGE8 = join(REPO_ROOT, 'man', 'wgsplit.8');
const PAGE5 = join(REPO_ROOT, 'man', 'wgsplit.toml.5');
const BASH = join(REPO_ROOT, 'hooks', 'completion', 'wgsplit.bash');
const ZSH = join(REPO_ROOT, 'hooks', 'completion', '_wgsplit');
const man8 = readFileSync(PAGE8, 'utf8');
const man5 = readFileSync(PAGE5, 'utf8');

// ---------------------------------------------------------------------------------------
// The CLI's options, from the OPTIONS table in src/cli/args.ts (it is not exported), and
// which of them each command accepts, from parseCli's own answers.

interface Option {
  name: string;
  type: 'string' | 'boolean';
  short?: string;
}

function cliOptions(): Option[] {
  const src = readFileSync(join(REPO_ROOT, 'src', 'cli', 'args.ts'), 'utf8');
  const block = /const OPTIONS = \{([\s\S]*?)\n\} as const;/.exec(src)?.[1];
  if (!block) throw new Error('cannot find `const OPTIONS = { ... } as const;` in src/cli/args.ts');
  const out: Option[] = [];
  for (const m of block.matchAll(/^\s*'?([a-z][a-z0-9-]*)'?:\s*\{\s*type:\s*'(string|boolean)'(?:,\s*short:\s*'(\w)')?\s*\}/gm)) {
    out.push({ name: m[1], type: m[2] as Option['type'], short: m[3] });
  }
  return out;
}

const OPTIONS = cliOptions();
const DOCUMENTED_COMMANDS = COMMANDS.filter((c) => c !== 'help' && c !== 'version');

/** A value parseCli accepts for each string option (the rest get "x"). */
const SAMPLE: Record<string, string> = { 'log-level': 'info', resync: '1', proto: 'tcp', dport: '1', sport: '1', uid: '1', from: '192.0.2.1', format: 'ip', family: '4' };
const POSITIONALS: Record<string, string[]> = { up: ['wg0'], down: ['wg0'], explain: ['192.0.2.1'] };

function accepts(command: string, o: Option): boolean {
  const argv = [command, ...(POSITIONALS[command] ?? []), `--${o.name}`];
  if (o.type === 'string') argv.push(SAMPLE[o.name] ?? 'x');
  try {
    parseCli(argv, {}, false);
    return true;
  } catch (e) {
    // Only this message means "not for this command"; other complaints (--dport without
    // --proto) come after the option was accepted.
    return !/does not apply to/.test((e as Error).message);
  }
}

const GLOBAL = OPTIONS.filter((o) => accepts('help', o));
const OWN = new Map(COMMANDS.map((c) => [c, OPTIONS.filter((o) => !GLOBAL.includes(o) && accepts(c, o))]));

// ---------------------------------------------------------------------------------------
// A little man(7) reader: sections, and the tags of .TP items with their nesting.

function section(page: string, name: string): string {
  const lines = page.split('\n');
  const start = lines.findIndex((l) => l === `.SH ${name}` || l === `.SH "${name}"`);
  if (start < 0) throw new Error(`no section ${name}`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('.SH '));
  return lines.slice(start + 1, end < 0 ? undefined : end).join('\n');
}

/** roff source line -> plain text: macros, font escapes and quotes removed, \- -> -. */
function plain(line: string): string {
  return line
    .replace(/^\.[A-Z]{1,2}\s?/, '')
    .replace(/\\f[BIRP]/g, '')
    .replace(/\\-/g, '-')
    .replace(/\\%|\\&/g, '')
    .replace(/"/g, '')
    .replace(/\\\(dq/g, '"')
    .trim();
}

interface Item {
  tag: string;
  depth: number;
  body: string[];
}

/** .TP items of a section: the tag line (as plain text), nesting depth (.RS/.RE), body. */
function items(text: string): Item[] {
  const out: Item[] = [];
  const lines = text.split('\n');
  let depth = 0;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (l.startsWith('.RS')) depth++;
    else if (l.startsWith('.RE')) depth--;
    else if (l === '.TP' && i + 1 < lines.length) {
      out.push({ tag: plain(lines[i + 1]), depth, body: [] });
      i++;
    } else if (out.length && out[out.length - 1].depth <= depth) out[out.length - 1].body.push(l);
  }
  return out;
}

/** The long and short option names a tag documents: "-n, --dry-run" -> [dry-run, -n]. */
function tagOptions(tag: string): string[] {
  return [...tag.matchAll(/(?:^|[\s,|[])(--?[a-zA-Z][a-z0-9-]*)/g)].map((m) => m[1]);
}

// ---------------------------------------------------------------------------------------
// (a) rendering without warnings

function runs(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return !r.error && r.status === 0;
}

const hasMan = runs('man', ['--version']);
const hasGroff = runs('groff', ['--version']);

for (const page of [PAGE8, PAGE5]) {
  const name = page.split('/').pop();
  (hasMan ? test : test.skip)(`${name}: man --warnings prints nothing`, (t) => {
    const r = spawnSync('man', ['--warnings', '-E', 'UTF-8', '-l', page], {
      encoding: 'utf8',
      env: { ...process.env, MANWIDTH: '80', MANPAGER: 'cat', PAGER: 'cat', LC_ALL: 'C.UTF-8' },
    });
    t.is(r.status, 0, r.stderr);
    t.is(r.stderr, '', 'man --warnings reported problems');
    t.true(r.stdout.length > 1000, 'the page rendered to (almost) nothing');
  });
  (hasGroff ? test : test.skip)(`${name}: groff -man -ww -z prints nothing`, (t) => {
    const r = spawnSync('groff', ['-man', '-ww', '-z', page], { encoding: 'utf8' });
    t.is(r.status, 0, r.stderr);
    t.is(r.stderr, '', 'groff -ww reported problems');
  });
}

// ---------------------------------------------------------------------------------------
// (b) wgsplit(8) against the CLI

test('the option table was read from src/cli/args.ts', (t) => {
  t.true(OPTIONS.length >= 15, `only ${OPTIONS.length} options parsed: has the OPTIONS table changed shape?`);
  for (const o of ['config', 'dry-run', 'json', 'format']) t.truthy(OPTIONS.find((x) => x.name === o), o);
  t.true(GLOBAL.some((o) => o.name === 'config') && !GLOBAL.some((o) => o.name === 'dry-run'));
});

test('wgsplit.8: every command has its own entry in COMMANDS', (t) => {
  const tags = items(section(man8, 'COMMANDS')).filter((i) => i.depth === 0).map((i) => i.tag.split(/\s+/)[0]);
  for (const c of COMMANDS) t.true(tags.includes(c), `no COMMANDS entry for "${c}"`);
  for (const tag of tags) t.true((COMMANDS as readonly string[]).includes(tag), `COMMANDS documents "${tag}", which is not a command`);
  for (const c of DOCUMENTED_COMMANDS) t.regex(section(man8, 'SYNOPSIS'), new RegExp(`^\\.B wgsplit ${c}$`, 'm'), `"${c}" missing from SYNOPSIS`);
});

test('wgsplit.8: every option of every command is an item of its entry', (t) => {
  const all = items(section(man8, 'COMMANDS'));
  for (const c of DOCUMENTED_COMMANDS) {
    const at = all.findIndex((i) => i.depth === 0 && i.tag.split(/\s+/)[0] === c);
    const next = all.findIndex((i, k) => k > at && i.depth === 0);
    const documented = all.slice(at + 1, next < 0 ? undefined : next).flatMap((i) => tagOptions(i.tag));
    const own = OWN.get(c) ?? [];
    for (const o of own) {
      t.true(documented.includes(`--${o.name}`), `${c}: --${o.name} is not an item of its entry`);
      if (o.short) t.true(documented.includes(`-${o.short}`), `${c}: -${o.short} (--${o.name}) is not in its item`);
    }
    for (const d of documented) {
      const o = OPTIONS.find((x) => `--${x.name}` === d || `-${x.short}` === d);
      t.truthy(o, `${c}: documents ${d}, which the CLI does not have`);
      if (o) t.true(own.includes(o), `${c}: documents ${d}, which "${c}" does not accept`);
    }
  }
});

test('wgsplit.8: every global option is an item of GLOBAL OPTIONS', (t) => {
  const documented = items(section(man8, 'GLOBAL OPTIONS')).flatMap((i) => tagOptions(i.tag));
  for (const o of GLOBAL) {
    t.true(documented.includes(`--${o.name}`), `--${o.name} is not in GLOBAL OPTIONS`);
    if (o.short) t.true(documented.includes(`-${o.short}`), `-${o.short} (--${o.name}) is not in GLOBAL OPTIONS`);
  }
  for (const d of documented) t.truthy(GLOBAL.find((o) => `--${o.name}` === d || `-${o.short}` === d), `GLOBAL OPTIONS documents ${d}, which is not a global option`);
});

test('wgsplit.8: exit codes, environment variables, protocol tag', (t) => {
  const codes = items(section(man8, 'EXIT STATUS')).map((i) => i.tag);
  t.deepEqual(codes, [EXIT_OK, EXIT_DRIFT, EXIT_INPUT, EXIT_KERNEL].map(String));
  // Every environment variable the code reads (env.X, process.env.X) has an entry.
  const read = new Set<string>();
  const walk = (dir: string) => {
    for (const f of readdirSync(dir)) {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f.endsWith('.ts')) for (const m of readFileSync(p, 'utf8').matchAll(/\benv\.([A-Z][A-Z0-9_]*)/g)) read.add(m[1]);
    }
  };
  walk(join(REPO_ROOT, 'src'));
  t.true(read.has('WGSPLIT_CONFIG'), 'the scan of src/ for environment variables found nothing');
  const env = items(section(man8, 'ENVIRONMENT')).map((i) => i.tag);
  for (const v of read) t.true(env.includes(v), `environment variable ${v} is read by the code but not in ENVIRONMENT`);
  t.regex(section(man8, 'KERNEL STATE'), new RegExp(`protocol\\n\\.B ${PROTOCOL_TAG}\\n`));
});

// ---------------------------------------------------------------------------------------
// wgsplit.toml(5) against the profile schema and the named sets

const keyItems = items(section(man5, 'KEYS'));
const keyOf = (i: Item) => i.tag.split(/\s+/)[0];

test('wgsplit.toml.5: every profile key is an item of KEYS, and nothing else is', (t) => {
  const keys = Object.keys(profileSchema.shape);
  t.true(keys.length >= 18);
  const documented = keyItems.map(keyOf);
  for (const k of keys) t.true(documented.includes(k), `profile key "${k}" is not documented in KEYS`);
  for (const d of documented) t.true(keys.includes(d), `KEYS documents "${d}", which is not a profile key`);
  t.deepEqual(documented, keys, 'KEYS should list the keys in the order of profileSchema');
});

test('wgsplit.8: every metric wgsplit emits is an item of METRICS, and nothing else is', (t) => {
  const documented = items(section(man8, 'METRICS')).map((i) => i.tag);
  t.deepEqual([...documented].sort(), [...METRIC_NAMES].sort());
});

test('wgsplit.toml.5: defaults match the code', (t) => {
  const tag = (k: string) => keyItems.find((i) => keyOf(i) === k)?.tag ?? '';
  const hex = (n: number) => '0x' + n.toString(16).padStart(8, '0');
  t.regex(tag('table'), new RegExp(`default ${DEFAULT_TABLE}\\)`));
  t.regex(tag('priority'), new RegExp(`default ${DEFAULT_PRIORITY}\\)`));
  t.regex(tag('fwmark'), new RegExp(`default ${hex(DEFAULT_FWMARK)}\\)`));
  t.regex(tag('fwmark_mask'), new RegExp(`default ${hex(DEFAULT_FWMARK_MASK)}\\)`));
  t.regex(tag('exclude'), /default \["@private"\]/);
  t.regex(tag('on_down'), /default "block"/);
  t.regex(tag('mode'), /default "auto"/);
  t.regex(tag('exclude_connected'), /default true/);
  t.regex(tag('interface'), /required/);
  const tableText = keyItems.find((i) => keyOf(i) === 'table')!.body.join(' ');
  for (const n of Object.keys(RESERVED_TABLES)) t.regex(tableText, new RegExp(`\\b${n}\\b`), `reserved table ${n} not named under "table"`);
});

test('wgsplit.toml.5: every named set is listed with all its prefixes', (t) => {
  const sets = items(section(man5, 'NAMED SETS'));
  const names = sets.map((i) => i.tag);
  for (const [name, set] of Object.entries(NAMED_SETS)) {
    const item = sets.find((i) => i.tag === `@${name}`);
    if (!item) {
      t.fail(`named set @${name} is not documented`);
      continue;
    }
    const text = item.body.map(plain).join(' ');
    if (name === 'private') {
      for (const part of Object.keys(NAMED_SETS).filter((n) => n !== 'private')) t.true(text.includes(`@${part}`), `@private should name @${part}`);
    } else {
      for (const p of set.prefixes) t.true(new RegExp(`(^|[\\s,:])${p.replace(/[.]/g, '\\.')}([\\s,.]|$)`).test(text), `@${name}: prefix ${p} is not listed`);
    }
  }
  for (const n of names) t.truthy(NAMED_SETS[n.slice(1)], `NAMED SETS documents ${n}, which does not exist`);
});

test('wgsplit.toml.5: the examples are the shipped profiles', (t) => {
  for (const f of readdirSync(join(REPO_ROOT, 'profiles')).filter((x) => x.endsWith('.toml'))) {
    t.true(man5.includes(`profiles/${f.replace(/-/g, '\\-')}`), `profiles/${f} is not among the EXAMPLES`);
    const body = readFileSync(join(REPO_ROOT, 'profiles', f), 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
    const examples = section(man5, 'EXAMPLES').replace(/\\-/g, '-');
    for (const l of body) t.true(examples.includes(l), `profiles/${f}: line "${l}" differs from the example`);
  }
});

// ---------------------------------------------------------------------------------------
// shell completion

const hasBash = runs('bash', ['-c', 'true']);

function bashComplete(words: string[]): string[] {
  const script = [
    `source ${JSON.stringify(BASH)}`,
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
    `COMP_CWORD=${words.length - 1}`,
    '_wgsplit',
    `printf '%s\\n' "\${COMPREPLY[@]}"`,
  ].join('\n');
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout.split('\n').filter(Boolean).sort();
}

(hasBash ? test : test.skip)('bash completion: commands, and exactly the options of each command', (t) => {
  t.deepEqual(bashComplete(['wgsplit', '']), [...COMMANDS].sort());
  const names = (os: Option[]) => os.flatMap((o) => [`--${o.name}`, ...(o.short ? [`-${o.short}`] : [])]);
  for (const c of COMMANDS) {
    t.deepEqual(bashComplete(['wgsplit', c, ...(POSITIONALS[c] ?? []), '-']), names([...GLOBAL, ...(OWN.get(c) ?? [])]).sort(), `options offered for "${c}"`);
  }
  t.deepEqual(bashComplete(['wgsplit', 'export', '--format', '']), ['ip', 'json', 'nft']);
  t.deepEqual(bashComplete(['wgsplit', 'export', '--format', '=', 'n']), ['nft']);
  t.deepEqual(bashComplete(['wgsplit', 'explain', '192.0.2.1', '-p', '']), ['icmp', 'tcp', 'udp']);
  t.deepEqual(bashComplete(['wgsplit', 'watch', '--log-level', '']), ['debug', 'error', 'info', 'warn']);
  t.deepEqual(bashComplete(['wgsplit', 'export', '--family', '']), ['4', '6']);
  t.true(bashComplete(['wgsplit', '-c', '/tmp', 'up', '']).includes('lo'), 'up completes interface names from /sys/class/net');
  t.deepEqual(bashComplete(['wgsplit', 'up', 'lo', '']), [], 'up takes one interface');
  const profiles = bashComplete(['wgsplit', 'check', join(REPO_ROOT, 'profiles') + '/']);
  t.true(profiles.length > 0 && profiles.every((p) => p.endsWith('.toml')), `check completes profiles: ${profiles.join(' ')}`);
});

test('zsh completion names every command and option', (t) => {
  const zsh = readFileSync(ZSH, 'utf8');
  for (const c of COMMANDS) t.true(zsh.includes(`'${c}:`), `zsh: command ${c}`);
  for (const o of OPTIONS) {
    t.true(zsh.includes(`--${o.name}`), `zsh: --${o.name}`);
    if (o.short) t.true(zsh.includes(`-${o.short}`), `zsh: -${o.short}`);
  }
});
