/**
 * Generated bad input through the real CLI entry (run() in src/cli/main.ts) against the
 * FakeKernel: seeded mutations of valid profiles and list files (byte flips, truncations,
 * key and value swaps, type changes, huge numbers, unicode, duplicated and dropped lines).
 * Every case must end in exit 0, 1 (diff: drift) or 2, never an internal error or a stack
 * trace, and exit 2 must mean no kernel write at all (FakeKernel.log empty).
 * Reproduce a failure with its seed: the message names it.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cli, INTERNAL } from '../helpers/cli.js';
import { EXAMPLE_TOML, fakeHost, rng } from '../helpers/unit.js';

const SEEDS: Record<string, string>[] = [
  { 'example.toml': EXAMPLE_TOML },
  {
    'office.toml': 'interface = "wg1"\ntable = 200\npriority = 10200\nprotocols = ["tcp", "udp"]\nexclude = ["@private", "198.51.100.0/24"]\ndports = [443, "8000-8999"]\n',
    'lists.txt': '# a list\n203.0.113.0/24\n2001:db8:1::/48\n45.10.0.0/16 # comment\n\n1.2.3.4\n',
    'listed.toml': 'interface = "wg0"\ntable = 300\npriority = 10300\ninclude_files = ["lists.txt"]\nexclude_files = ["lists.txt"]\nuids = [0, "100000-165535"]\non_down = "direct"\n',
  },
  {
    'fw.toml': 'interface = "wg0"\nmode = "fwmark"\nfwmark = 0x01000000\nfwmark_mask = 0x0f000000\nprotocols = ["udp"]\nsports = [53]\nfamilies = ["ipv4", "ipv6"]\nexclude_connected = false\ndescription = "dns"\n',
  },
];

const JUNK = ['"', "'", '[', ']', '{', '}', '=', ',', '#', '\n', '\0', '\\', '-', '.', ':', '/', '@', 'é', '\u202e', '😀', '\uFEFF', ' ', '\t', '0', '9', 'x'];
const VALUES = ['""', '"x"', '0', '-1', '1e400', '99999999999999999999', '0x7fffffffffffffff', 'inf', 'nan', 'true', '[]', '[[]]', '{}', '{ a = 1 }', '1979-05-27T07:32:00Z', '"@nope"', '"∞"', '"10.0.0.0/8"', '["root"]', '"' + 'a'.repeat(5000) + '"', '-0', '3.5', '[1, "a", 2.5]'];

function mutate(text: string, rand: () => number): string {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)];
  const lines = text.split('\n');
  const at = Math.floor(rand() * Math.max(1, text.length));
  switch (Math.floor(rand() * 9)) {
    case 0: // byte flip
      return text.slice(0, at) + pick(JUNK) + text.slice(at + 1);
    case 1: // truncation
      return text.slice(0, at);
    case 2: {
      // swap the values of two keys
      const i = Math.floor(rand() * lines.length);
      const j = Math.floor(rand() * lines.length);
      const [ki, vi] = lines[i].split(/=(.*)/s);
      const [kj, vj] = lines[j].split(/=(.*)/s);
      if (vi === undefined || vj === undefined) return lines.reverse().join('\n');
      lines[i] = `${ki}=${vj}`;
      lines[j] = `${kj}=${vi}`;
      return lines.join('\n');
    }
    case 3: {
      // type change / huge number / unicode value
      const i = Math.floor(rand() * lines.length);
      const [k, v] = lines[i].split(/=(.*)/s);
      if (v === undefined) return text + `\n${pick(['table', 'priority', 'uids', 'dports', 'mode'])} = ${pick(VALUES)}\n`;
      lines[i] = `${k}= ${pick(VALUES)}`;
      return lines.join('\n');
    }
    case 4: // duplicate a line (duplicate keys)
      return [...lines.slice(0, at % lines.length), lines[at % lines.length], ...lines.slice(at % lines.length)].join('\n');
    case 5: // drop a line
      return lines.filter((_, i) => i !== at % lines.length).join('\n');
    case 6: // a key that is not a key, or a section
      return text + pick(['\n[interface]\nx = 1\n', '\n"table" = 1\n', '\ntable.x = 1\n', '\n[[uids]]\n', '\nexclude_files = ["/dev/null", "/proc/self/status", "../../etc/passwd"]\n']);
    case 7: // a few random bytes anywhere
      return text.slice(0, at) + String.fromCharCode(...Array.from({ length: 4 }, () => Math.floor(rand() * 0x3000))) + text.slice(at);
    default: // several of the above
      return mutate(mutate(text, rand), rand);
  }
}

const COMMANDS = [['up', 'wg0'], ['up', 'wg1'], ['down', 'wg0'], ['apply'], ['apply', '--dry-run'], ['diff'], ['status'], ['check'], ['export'], ['export', '--format', 'nft']];

test('generated bad profiles and list files: exit 0/1/2 only, one clear message, no kernel write on 2', async (t) => {
  const base = mkdtempSync(path.join(tmpdir(), 'wgsplit-unit-fuzz-'));
  const started = Date.now();
  let cases = 0;
  const codes: Record<number, number> = {};
  try {
    for (let seed = 1; seed <= 800; seed++) {
      const rand = rng(seed);
      const files = { ...SEEDS[seed % SEEDS.length] };
      const names = Object.keys(files);
      const victim = names[Math.floor(rand() * names.length)];
      files[victim] = mutate(files[victim], rand);
      const dir = mkdtempSync(path.join(base, `s${seed}-`));
      for (const [n, text] of Object.entries(files)) writeFileSync(path.join(dir, n), text, { mode: 0o644 });
      const argv = COMMANDS[seed % COMMANDS.length];
      const k = fakeHost();
      const r = await cli(['--config', dir, ...argv], { kernel: k });
      cases++;
      codes[r.code] = (codes[r.code] ?? 0) + 1;
      const what = `seed ${seed}, ${argv.join(' ')}, ${victim}:\n${JSON.stringify(files[victim]).slice(0, 400)}\n-> exit ${r.code}\n${r.err}`;
      if (![0, 1, 2].includes(r.code) || (r.code === 1 && argv[0] !== 'diff')) t.fail(`unexpected exit: ${what}`);
      if (INTERNAL.test(r.err) || INTERNAL.test(r.out)) t.fail(`internal error or stack trace: ${what}`);
      if (r.code === 2) {
        if (k.log.length) t.fail(`exit 2 after kernel writes (${k.log.length}): ${what}`);
        if (!r.err.trim()) t.fail(`exit 2 without a message: ${what}`);
        // every line names a file position or starts with "wgsplit:"
        for (const l of r.err.trim().split('\n')) if (!/^(wgsplit: |Try "wgsplit --help"|\/.+:\d+:\d+: )/.test(l)) t.fail(`unclear line ${JSON.stringify(l)}: ${what}`);
      }
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
  t.log(`${cases} cases in ${Date.now() - started} ms, exit codes ${JSON.stringify(codes)}`);
  t.true(codes[2] > 200, 'most mutations are refused');
  t.true((codes[0] ?? 0) > 10, 'some still load');
});

test('generated bad command lines and environment: exit 0/2 only, never an internal error', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wgsplit-unit-fuzz-argv-'));
  writeFileSync(path.join(dir, 'example.toml'), EXAMPLE_TOML, { mode: 0o644 });
  const rand = rng(8);
  const words = ['up', 'down', 'apply', 'diff', 'status', 'check', 'watch', 'explain', 'export', 'help', 'version', 'wg0', 'nope', '--dry-run', '-n', '--json', '--full', '--proto', 'tcp', 'sctp', '--dport', '99999', '-1', '--uid', 'root', 'é', '--from', '::1', '1.1.1.1', '--format', 'yaml', '--family', '5', '--resync', 'x', '--log-level', 'loud', '--config', '/nonexistent', '--', '', '--bogus', '-z', '--color', '--no-color', '--quiet', '10.0.0.0/8', '\0'];
  try {
    for (let i = 0; i < 300; i++) {
      const n = 1 + Math.floor(rand() * 5);
      const argv = Array.from({ length: n }, () => words[Math.floor(rand() * words.length)]);
      // watch would run forever: only its argument checking is exercised
      if (argv.includes('watch') && !argv.includes('--bogus')) continue;
      const k = fakeHost();
      const env = i % 3 === 0 ? { WGSPLIT_CONFIG: dir, WGSPLIT_LOG_LEVEL: 'loud', NO_COLOR: '1' } : { WGSPLIT_CONFIG: dir };
      const r = await cli(argv, { kernel: k, env });
      const what = `${JSON.stringify(argv)} -> exit ${r.code}\n${r.err}`;
      if (![0, 1, 2].includes(r.code)) t.fail(`unexpected exit: ${what}`);
      if (INTERNAL.test(r.err)) t.fail(`internal error: ${what}`);
      if (r.code === 2 && k.log.length) t.fail(`exit 2 after kernel writes: ${what}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.pass();
});
