/**
 * Profiles: the corpus of malformed profiles in test/fixtures/bad-profiles (each file says
 * what it expects in `# expect: LINE:COL MESSAGE-SUBSTRING` lines at its top), the good
 * profiles, defaults, and the checks across files (tables and priorities are unique).
 */
import test from 'ava';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatProblem, WgsplitError } from '../../src/errors.js';
import { DEFAULT_PRIORITY, DEFAULT_TABLE } from '../../src/model/constants.js';
import { formatPrefix } from '../../src/model/prefix.js';
import { loadProfileDir, loadProfileFiles } from '../../src/profile/load.js';
import { parseProfile } from '../../src/profile/parse.js';
import type { Profile } from '../../src/profile/types.js';
import { validateSet } from '../../src/profile/validateSet.js';
import { EXAMPLE_TOML, REPO_ROOT } from '../helpers/unit.js';

const BAD = join(REPO_ROOT, 'test', 'fixtures', 'bad-profiles');
const badFiles = readdirSync(BAD).filter((f) => f.endsWith('.toml')).sort();

test('the corpus of malformed profiles has at least 30 files, each with expectations', (t) => {
  t.true(badFiles.length >= 30, `only ${badFiles.length} fixtures`);
  for (const f of badFiles) {
    const first = readFileSync(join(BAD, f), 'utf8').split('\n')[0];
    t.regex(first, /^# expect: \d+:\d+ \S/, `${f}: first line must be an expectation`);
  }
});

for (const f of badFiles) {
  test(`bad profile ${f}`, (t) => {
    const path = join(BAD, f);
    const text = readFileSync(path, 'utf8');
    const expects = [...text.matchAll(/^# expect: (\d+):(\d+) (.+)$/gm)].map((m) => ({ line: Number(m[1]), col: Number(m[2]), text: m[3] }));
    t.true(expects.length > 0);
    const r = parseProfile(path, text);
    t.is(r.profile, undefined, 'a broken profile must not produce a profile');
    const got = r.problems.map(formatProblem).join('\n');
    for (const e of expects) {
      t.true(
        r.problems.some((p) => p.line === e.line && p.col === e.col && p.message.includes(e.text)),
        `expected ${e.line}:${e.col} "${e.text}", got:\n${got}`,
      );
    }
    t.is(r.problems.length, expects.length, `every problem must be expected, got:\n${got}`);
    for (const p of r.problems) {
      t.is(p.file, path);
      t.true(p.line >= 1 && p.col >= 1);
      t.false(p.message.includes('\n'), 'one line per problem');
    }
  });
}

test('a TOML syntax error on the first line is positioned at the right column', (t) => {
  // @iarna/toml counts columns from 1 on its first line and from 0 on the others.
  const r = parseProfile('p.toml', 'interface = wg0\n');
  t.deepEqual(
    r.problems.map((p) => [p.line, p.col]),
    [[1, 13]],
  );
  const r2 = parseProfile('p.toml', '\ninterface = wg0\n');
  t.deepEqual(
    r2.problems.map((p) => [p.line, p.col]),
    [[2, 13]],
  );
  const r3 = parseProfile('p.toml', '; x\n');
  t.deepEqual(
    r3.problems.map((p) => [p.line, p.col]),
    [[1, 1]],
  );
});

test('every problem in a file is reported at once, in file:line:col form', (t) => {
  const text = 'interface = "wg/0"\ntable = 255\npriority = 0\nexclude = ["10.0.0.1/8", "@nope"]\ndports = ["9-1"]\n';
  const r = parseProfile('/etc/wgsplit/x.toml', text);
  t.is(r.profile, undefined);
  t.deepEqual(r.problems.map(formatProblem), [
    '/etc/wgsplit/x.toml:1:1: interface "wg/0" is not a valid interface name (1-15 characters, no "/" or spaces)',
    '/etc/wgsplit/x.toml:2:9: table 255 is reserved: table 255 is the kernel\'s "local" table',
    '/etc/wgsplit/x.toml:3:12: priority 0 is invalid: 0 is the kernel\'s "lookup local" rule; use 5271-32765',
    '/etc/wgsplit/x.toml:4:12: exclude[0]: "10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8?)',
    '/etc/wgsplit/x.toml:4:26: exclude[1]: unknown named set "@nope"; known: @loopback, @rfc1918, @linklocal, @cgnat, @ula, @multicast, @broadcast, @reserved, @private',
    '/etc/wgsplit/x.toml:5:11: dports[0]: range "9-1" ends before it starts',
    '/etc/wgsplit/x.toml:5:10: ports only exist for tcp and udp: with dports or sports, set protocols to ["tcp"], ["udp"] or both',
  ]);
});

test("the issue's example profile parses with zero problems and means what it says", (t) => {
  const r = parseProfile('/etc/wgsplit/example.toml', EXAMPLE_TOML);
  t.deepEqual(r.problems, []);
  const p = r.profile!;
  t.is(p.name, 'example');
  t.is(p.interface, 'wg0');
  t.is(p.table, 10086);
  t.is(p.priority, 10086);
  t.deepEqual(p.protocols, ['tcp']);
  t.deepEqual(
    p.exclude.map((s) => s.text),
    ['@private'],
  );
  t.true(p.exclude[0].prefixes.map(formatPrefix).includes('100.64.0.0/10'), '@private holds the CGNAT range tailscale lives in');
  t.deepEqual(
    p.include.flatMap((s) => s.prefixes.map(formatPrefix)),
    ['0.0.0.0/0', '::/0'],
  );
  t.is(p.families, undefined, 'families default to those the interface has an address in');
  t.is(p.onDown, 'block');
  t.deepEqual([p.dports, p.sports, p.uids], [[], [], []]);
});

test('defaults: only interface given', (t) => {
  const p = parseProfile('/x/min.toml', 'interface = "wg0"\n').profile!;
  t.truthy(p);
  t.is(p.table, DEFAULT_TABLE);
  t.is(p.priority, DEFAULT_PRIORITY);
  t.is(p.protocols, undefined, 'all protocols');
  t.deepEqual(
    p.exclude.map((s) => s.text),
    ['@private'],
  );
});

test('ranges, families and protocols in their accepted spellings', (t) => {
  const r = parseProfile(
    '/x/r.toml',
    'interface = "wg0"\nprotocols = ["tcp", "udp"]\ndports = [443, "8000-8080", " 53 "]\nuids = [0, "1000-1999"]\nfamilies = ["inet6", "ipv4"]\non_down = "direct"\ninclude = ["8.8.8.8", "2001:4860::/32"]\n',
  );
  t.deepEqual(r.problems, []);
  const p = r.profile!;
  t.deepEqual(p.dports, [
    { start: 443, end: 443 },
    { start: 8000, end: 8080 },
    { start: 53, end: 53 },
  ]);
  t.deepEqual(p.uids, [
    { start: 0, end: 0 },
    { start: 1000, end: 1999 },
  ]);
  t.deepEqual(p.families, [6, 4]);
  t.is(p.onDown, 'direct');
  t.deepEqual(
    p.include.flatMap((s) => s.prefixes.map(formatPrefix)),
    ['8.8.8.8/32', '2001:4860::/32'],
  );
});

test('the shipped profiles in profiles/ parse with zero problems and do not clash', (t) => {
  const dir = join(REPO_ROOT, 'profiles');
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.toml')).map((f) => join(dir, f)) : [];
  if (files.length === 0) {
    t.log('profiles/ has no *.toml yet; the inline example above stands in');
    t.pass();
    return;
  }
  const texts = new Map(files.map((f) => [f, readFileSync(f, 'utf8')]));
  const profiles: Profile[] = [];
  for (const [f, text] of texts) {
    const r = parseProfile(f, text);
    t.deepEqual(r.problems.map(formatProblem), [], f);
    if (r.profile) profiles.push(r.profile);
  }
  // They are alternatives as shipped, but each must at least parse on its own.
  t.is(profiles.length, files.length);
});

// ---- checks across files -------------------------------------------------------------

function parsed(file: string, text: string): [Profile, string] {
  const r = parseProfile(file, text);
  if (!r.profile) throw new Error(r.problems.map(formatProblem).join('\n'));
  return [r.profile, text];
}

function setProblems(...files: [string, string][]) {
  const list = files.map(([f, text]) => parsed(f, text));
  return validateSet(
    list.map(([p]) => p),
    new Map(list.map(([p, text]) => [p.file, text])),
  );
}

test('two profiles with one table: the second is reported, naming the first', (t) => {
  const problems = setProblems(
    ['/etc/wgsplit/a.toml', 'interface = "wg0"\ntable = 100\npriority = 10000\n'],
    ['/etc/wgsplit/b.toml', '# office\ninterface = "wg1"\npriority = 10001\ntable = 100\n'],
  );
  t.deepEqual(problems.map(formatProblem), [
    '/etc/wgsplit/b.toml:4:9: table 100 is also used by profile "a" (/etc/wgsplit/a.toml:2:9); give each profile its own table',
  ]);
});

test('two profiles with one priority', (t) => {
  const problems = setProblems(
    ['/etc/wgsplit/a.toml', 'interface = "wg0"\ntable = 100\npriority = 10000\n'],
    ['/etc/wgsplit/b.toml', 'interface = "wg1"\ntable = 200\npriority = 10000\n'],
  );
  t.deepEqual(problems.map(formatProblem), [
    '/etc/wgsplit/b.toml:3:12: priority 10000 is also used by profile "a" (/etc/wgsplit/a.toml:3:12); give each profile its own priority',
  ]);
});

test('two profiles that both rely on the defaults clash on table and priority, and say so', (t) => {
  const problems = setProblems(['/etc/wgsplit/a.toml', 'interface = "wg0"\n'], ['/etc/wgsplit/b.toml', 'interface = "wg1"\nprotocols = ["udp"]\n']);
  t.is(problems.length, 2);
  t.is(
    formatProblem(problems[0]),
    `/etc/wgsplit/b.toml:1:1: table ${DEFAULT_TABLE} (the default) is also used by profile "a" (/etc/wgsplit/a.toml:1:1); give each profile its own table`,
  );
  t.is(
    formatProblem(problems[1]),
    `/etc/wgsplit/b.toml:1:1: priority ${DEFAULT_PRIORITY} (the default) is also used by profile "a" (/etc/wgsplit/a.toml:1:1); give each profile its own priority`,
  );
});

test('three profiles with distinct tables and priorities: no problems', (t) => {
  const problems = setProblems(
    ['/etc/wgsplit/a.toml', 'interface = "wg0"\n'],
    ['/etc/wgsplit/b.toml', 'interface = "wg0"\ntable = 200\npriority = 10087\nprotocols = ["udp"]\n'],
    ['/etc/wgsplit/c.toml', 'interface = "wg1"\ntable = 300\npriority = 10088\n'],
  );
  t.deepEqual(problems, []);
});

// ---- loading files ------------------------------------------------------------------

test('loadProfileFiles reports the problems of every file at once, and the clashes between them', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wgsplit-unit-'));
  try {
    writeFileSync(join(dir, 'a.toml'), 'interface = "wg0"\n');
    writeFileSync(join(dir, 'b.toml'), 'interface = "wg1"\n');
    writeFileSync(join(dir, 'c.toml'), 'interface = "wg2"\ntable = 300\npriority = 10300\nexlcude = []\n');
    const err = t.throws(() => loadProfileFiles(['a', 'b', 'c', 'missing'].map((n) => join(dir, `${n}.toml`))), { instanceOf: WgsplitError });
    t.is(err!.code, 'PROFILE');
    const lines = err!.problems.map(formatProblem);
    t.true(lines.some((l) => l.startsWith(join(dir, 'c.toml') + ':4:1: unknown key "exlcude"')));
    t.true(lines.some((l) => l.startsWith(join(dir, 'missing.toml') + ':1:1: cannot read: does not exist (ENOENT)')));
    t.true(lines.some((l) => l.startsWith(join(dir, 'b.toml') + ':1:1: table 10086 (the default) is also used by profile "a"')));
    t.is(lines.length, 4, lines.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadProfileDir reads *.toml only, sorted; refuses group/other-writable files when run as root', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wgsplit-unit-'));
  try {
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'b.toml'), 'interface = "wg0"\ntable = 200\npriority = 10200\n', { mode: 0o644 });
    writeFileSync(join(dir, 'a.toml'), 'interface = "wg0"\n', { mode: 0o644 });
    writeFileSync(join(dir, 'notes.txt'), 'not a profile', { mode: 0o644 });
    writeFileSync(join(dir, 'c.toml.bak'), 'garbage = [', { mode: 0o644 });
    const loaded = loadProfileDir(dir);
    t.deepEqual(
      loaded.profiles.map((p) => p.name),
      ['a', 'b'],
    );
    if (process.getuid?.() !== 0) {
      t.log('not root: ownership and mode checks are skipped by design');
      return;
    }
    chmodSync(join(dir, 'b.toml'), 0o666);
    const err = t.throws(() => loadProfileDir(dir), { instanceOf: WgsplitError });
    t.is(err!.code, 'CONFIG_PERMS');
    t.regex(err!.message, /b\.toml is writable by group/);
    chmodSync(join(dir, 'b.toml'), 0o644);
    chmodSync(dir, 0o757);
    t.is((t.throws(() => loadProfileDir(dir)) as WgsplitError).code, 'CONFIG_PERMS');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadProfileDir: a missing directory is an ENVIRONMENT error', (t) => {
  const err = t.throws(() => loadProfileDir('/nonexistent/wgsplit-config'), { instanceOf: WgsplitError });
  t.is(err!.code, 'ENVIRONMENT');
});
