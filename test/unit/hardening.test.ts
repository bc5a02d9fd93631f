/**
 * Issue 8: what a new user and bad input hit. Through the real CLI entry (run()) against
 * the FakeKernel: list files and profiles that are not regular files or are too large,
 * user names in `uids`, state records from another namespace instance, a damaged state
 * file, a state directory that cannot be written. Every refusal is exit 2, one clear line
 * per problem, and no kernel write (FakeKernel.log stays empty).
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, writeFileSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseCli } from '../../src/cli/args.js';
import { formatProblem, WgsplitError } from '../../src/errors.js';
import { loadProfileDir } from '../../src/profile/load.js';
import { parseProfile } from '../../src/profile/parse.js';
import { MAX_FILE_BYTES } from '../../src/profile/readText.js';
import { getentUser } from '../../src/profile/users.js';
import { FileStateStore, MemoryStateStore, NamespaceBoundStore, openState } from '../../src/state/owned.js';
import { cli, INTERNAL } from '../helpers/cli.js';
import { EXAMPLE_TOML, fakeHost } from '../helpers/unit.js';

const dirs: string[] = [];
function confDir(files: Record<string, string> = {}): string {
  const d = mkdtempSync(path.join(tmpdir(), 'wgsplit-unit-hard-'));
  dirs.push(d);
  for (const [n, text] of Object.entries(files)) writeFileSync(path.join(d, n), text, { mode: 0o644 });
  return d;
}
test.after.always(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// ---- list files and profiles that are not regular files ----------------------------------

const listProfile = (entry: string) => `${EXAMPLE_TOML}exclude_files = ["ok.txt", ${JSON.stringify(entry)}]\n`;

for (const c of [
  { name: '/dev/zero', entry: () => '/dev/zero', says: /cannot read \/dev\/zero: is a character device, not a regular file/ },
  {
    name: 'a FIFO',
    entry: (d: string) => {
      execFileSync('mkfifo', [path.join(d, 'pipe.txt')]);
      return 'pipe.txt';
    },
    says: /pipe\.txt: is a FIFO \(named pipe\), not a regular file/,
  },
  {
    name: 'a directory',
    entry: (d: string) => {
      mkdirSync(path.join(d, 'lists'));
      return 'lists';
    },
    says: /lists: is a directory, not a regular file/,
  },
  {
    name: 'a file over 16 MiB',
    entry: (d: string) => {
      const fd = openSync(path.join(d, 'huge.txt'), 'w', 0o644);
      ftruncateSync(fd, MAX_FILE_BYTES + 1); // sparse: costs no disk
      closeSync(fd);
      return 'huge.txt';
    },
    says: /huge\.txt: is 16777217 bytes, more than the 16 MiB \(16777216 bytes\) a profile or list file may have/,
  },
  { name: 'a missing file', entry: () => 'nope.txt', says: /nope\.txt: does not exist \(ENOENT\)/ },
]) {
  test(`an exclude_files entry naming ${c.name}: file:line:col at the entry, exit 2, nothing written, no hang`, async (t) => {
    const d = confDir({ 'ok.txt': '203.0.113.0/24\n' });
    const entry = c.entry(d);
    writeFileSync(path.join(d, 'example.toml'), listProfile(entry), { mode: 0o644 });
    for (const argv of [['up', 'wg0'], ['apply'], ['diff'], ['check']]) {
      const k = fakeHost();
      const r = await cli(['--config', d, ...argv], { kernel: k });
      t.is(r.code, 2, `${argv.join(' ')}: ${r.err}`);
      // line 7 of the profile, the second element of the array (col 28)
      t.regex(r.err, new RegExp(`^${escape(path.join(d, 'example.toml'))}:7:28: exclude_files\\[1\\]: `, 'm'), r.err);
      t.regex(r.err, c.says);
      t.is(r.err.trim().split('\n').length, 1, r.err);
      t.notRegex(r.err, INTERNAL);
      t.deepEqual(k.log, [], 'no kernel write');
    }
  });
}

test('a profile that is a FIFO, a directory or a dangling symlink: one line each, exit 2, no hang', async (t) => {
  const d = confDir({ 'example.toml': EXAMPLE_TOML });
  execFileSync('mkfifo', [path.join(d, 'fifo.toml')]);
  mkdirSync(path.join(d, 'dir.toml'));
  symlinkSync(path.join(d, 'gone'), path.join(d, 'link.toml'));
  const k = fakeHost();
  const r = await cli(['--config', d, 'up', 'wg0'], { kernel: k });
  t.is(r.code, 2, r.err);
  t.regex(r.err, new RegExp(`^${escape(path.join(d, 'fifo.toml'))}:1:1: cannot read: is a FIFO \\(named pipe\\), not a regular file$`, 'm'));
  t.regex(r.err, new RegExp(`^${escape(path.join(d, 'dir.toml'))}:1:1: cannot read: is a directory, not a regular file$`, 'm'));
  t.regex(r.err, new RegExp(`^${escape(path.join(d, 'link.toml'))}:1:1: cannot read: does not exist \\(ENOENT\\)$`, 'm'));
  t.notRegex(r.err, INTERNAL);
  t.deepEqual(k.log, []);
  // `check FILE` on a FIFO too
  const c = await cli(['check', path.join(d, 'fifo.toml')], { kernel: fakeHost() });
  t.is(c.code, 2);
  t.regex(c.err, /fifo\.toml:1:1: cannot read: is a FIFO/);
});

test('a list of 100,000 lines is well within the limit and loads', (t) => {
  const lines: string[] = [];
  for (let i = 0; i < 100_000; i++) lines.push(`2a0${i >> 16}:${(i & 0xffff).toString(16)}::/32 # entry ${i}`);
  const text = lines.join('\n') + '\n';
  t.true(text.length < MAX_FILE_BYTES / 3, `${text.length} bytes`);
  const d = confDir({ 'big.txt': text, 'example.toml': `${EXAMPLE_TOML}exclude_files = ["big.txt"]\n` });
  const { profiles } = loadProfileDir(d);
  const prefixes = profiles[0].exclude.find((s) => s.text === 'file big.txt')!.prefixes;
  t.is(prefixes.length, 100_000);
});

// ---- user names in uids ------------------------------------------------------------------

const USERS: Record<string, number> = { alice: 1000, 'bob.smith': 1001, svc$: 999 };
const fakeUsers = (name: string) => (name === 'ldapdown' ? { error: 'getent passwd did not answer within 5 s' } : USERS[name] === undefined ? undefined : { uid: USERS[name] });

test('uids: names, numbers and ranges; names resolved by the injected resolver', (t) => {
  const r = parseProfile('/etc/wgsplit/u.toml', 'interface = "wg0"\nuids = ["alice", 1000, "100000-165535", "bob.smith", "svc$"]\n', { resolveUser: fakeUsers });
  t.deepEqual(r.problems, []);
  t.deepEqual(r.profile!.uids, [
    { start: 1000, end: 1000 },
    { start: 1000, end: 1000 },
    { start: 100000, end: 165535 },
    { start: 1001, end: 1001 },
    { start: 999, end: 999 },
  ]);
});

test('uids: an unknown name or a failed lookup is a problem at its position; without a resolver names are refused', (t) => {
  const text = 'interface = "wg0"\nuids = [\n  1000,\n  "mallory",\n  "ldapdown",\n  "-rf",\n]\n';
  const r = parseProfile('/etc/wgsplit/u.toml', text, { resolveUser: fakeUsers });
  t.deepEqual(r.problems.map(formatProblem), [
    '/etc/wgsplit/u.toml:4:3: uids[1]: unknown user "mallory" (getent passwd mallory finds no such user)',
    '/etc/wgsplit/u.toml:5:3: uids[2]: cannot look up user "ldapdown": getent passwd did not answer within 5 s',
    '/etc/wgsplit/u.toml:6:3: uids[3]: "-rf" is not a uid, a user name or a range "a-b"',
  ]);
  const pure = parseProfile('/etc/wgsplit/u.toml', 'interface = "wg0"\nuids = ["alice"]\n');
  t.deepEqual(pure.problems.map(formatProblem), ['/etc/wgsplit/u.toml:2:9: uids[0]: cannot look up user "alice": user names cannot be resolved here']);
});

test('uids: real NSS lookups through getent (root exists everywhere; a made-up name does not)', async (t) => {
  t.deepEqual(getentUser('root'), { uid: 0 });
  t.is(getentUser('wgsplit-no-such-user-8'), undefined);
  const d = confDir({ 'example.toml': `${EXAMPLE_TOML}uids = ["root", "wgsplit-no-such-user-8"]\n` });
  const k = fakeHost();
  const r = await cli(['--config', d, 'apply'], { kernel: k });
  t.is(r.code, 2, r.err);
  t.is(r.err, `${path.join(d, 'example.toml')}:7:17: uids[1]: unknown user "wgsplit-no-such-user-8" (getent passwd wgsplit-no-such-user-8 finds no such user)\n`);
  t.deepEqual(k.log, []);
  writeFileSync(path.join(d, 'example.toml'), `${EXAMPLE_TOML}uids = ["root"]\n`);
  const ok = await cli(['--config', d, 'apply'], { kernel: k });
  t.is(ok.code, 0, ok.err);
  t.true(k.log.some((l) => /add rule .*uidrange 0-0/.test(l)), k.log.join('\n'));
});

test('explain --uid takes a user name; a bad one is a usage error', (t) => {
  t.deepEqual(parseCli(['explain', '1.1.1.1', '--uid', 'alice'], {}, false).explain, { proto: undefined, dport: undefined, sport: undefined, uid: undefined, user: 'alice', from: undefined, app: undefined, pid: undefined });
  t.is(parseCli(['explain', '1.1.1.1', '--uid', '42'], {}, false).explain.uid, 42);
  const e = t.throws(() => parseCli(['explain', '1.1.1.1', '--uid=a/b'], {}, false), { instanceOf: WgsplitError });
  t.is(e!.code, 'USAGE');
});

// ---- the state record is bound to the namespace instance ------------------------------------

test('a record written in another namespace instance is dropped with a note, never obeyed', async (t) => {
  const d = confDir({ 'example.toml': EXAMPLE_TOML });
  const mem = new MemoryStateStore();
  // Namespace A: up, then down: wg0 is "stopped", which makes apply and the watcher leave it alone.
  const a = fakeHost();
  t.is((await cli(['--config', d, 'up', 'wg0'], { kernel: a, state: mem })).code, 0);
  t.is((await cli(['--config', d, 'down', 'wg0'], { kernel: a, state: mem })).code, 0);
  t.deepEqual(mem.load().stopped, ['wg0']);
  a.clearLog();
  const again = await cli(['--config', d, 'apply'], { kernel: a, state: mem });
  t.is(again.code, 0);
  t.deepEqual(a.log, [], 'in A, stopped is obeyed');
  t.notRegex(again.err, /note/);
  // Namespace B reuses A's inode (same file) but its loopback came up at another moment.
  const b = fakeHost();
  b.loBirth = 5555;
  const r = await cli(['--config', d, 'apply'], { kernel: b, state: mem });
  t.is(r.code, 0, r.err);
  t.regex(r.err, /^wgsplit: note: the state record was written in another network namespace that had this one's inode number .*: dropped, not applied here$/m);
  t.true(b.log.some((l) => l.startsWith('add rule')), b.log.join('\n'));
  t.deepEqual(mem.load().stopped, [], "B's record replaces A's");
  t.regex(mem.load().namespace ?? '', / lo 5555$/);
  // and B's own record is then obeyed without a note
  const r2 = await cli(['--config', d, 'apply'], { kernel: b, state: mem });
  t.is(r2.err, '');
});

test('a record that carries no namespace (or only the probe result) is handled safely', async (t) => {
  const mem = new MemoryStateStore();
  mem.save({ tables: { '10086': { interface: 'wg0', profile: 'example' } }, stopped: ['wg0'] });
  const notes: string[] = [];
  const s = await openState(fakeHost(), (m) => notes.push(m), mem);
  t.deepEqual(s.load(), { tables: {}, probe: undefined });
  t.is(notes.length, 1);
  const onlyProbe = new MemoryStateStore();
  onlyProbe.save({ tables: {}, probe: { key: 'k', supported: true, missing: [] } });
  const s2 = new NamespaceBoundStore(onlyProbe, {}, (m) => notes.push(m));
  t.deepEqual(s2.load().probe, { key: 'k', supported: true, missing: [] });
  t.is(notes.length, 1, 'nothing to drop, nothing said');
});

test('a namespace whose loopback never came up is bound by net.ipv4.conf.lo.tag instead', async (t) => {
  const d = confDir({ 'example.toml': EXAMPLE_TOML });
  const mem = new MemoryStateStore();
  const a = fakeHost();
  a.loBirth = undefined;
  t.is((await cli(['--config', d, 'up', 'wg0'], { kernel: a, state: mem })).err, '');
  t.not(a.loTag, 0, 'a tag was written');
  t.is(mem.load().namespace?.endsWith(` tag ${a.loTag}`), true);
  const tag = a.loTag;
  t.is((await cli(['--config', d, 'down', 'wg0'], { kernel: a, state: mem })).code, 0);
  t.is(a.loTag, tag, 'written once');
  a.clearLog();
  await cli(['--config', d, 'apply'], { kernel: a, state: mem });
  t.deepEqual(a.log, [], 'in A the record is obeyed: wg0 stays stopped');
  // B: same inode, lo never up either, its tag 0 like every new namespace's
  const b = fakeHost();
  b.loBirth = undefined;
  const r = await cli(['--config', d, 'apply'], { kernel: b, state: mem });
  t.regex(r.err, /written in another network namespace .*: dropped, not applied here/);
  t.true(b.log.some((l) => l.startsWith('add rule')), b.log.join('\n'));
  // the loopback coming up later does not unbind the record: the tag still matches
  b.loBirth = 777;
  b.clearLog();
  const r2 = await cli(['--config', d, 'apply'], { kernel: b, state: mem });
  t.is(r2.err, '');
  t.deepEqual(b.log, []);
});

test('no loopback stamp and no settable tag: the record is written with a warning saying why', async (t) => {
  const d = confDir({ 'example.toml': EXAMPLE_TOML });
  const k = fakeHost();
  k.loBirth = undefined;
  k.loTag = undefined;
  const r = await cli(['--config', d, 'up', 'wg0'], { kernel: k });
  t.is(r.code, 0);
  t.regex(r.err, /loopback has never been up.*ip link set lo up/);
  // such a record is still this namespace's own
  const mem = new MemoryStateStore();
  await cli(['--config', d, 'up', 'wg0'], { kernel: k, state: mem });
  t.is((await cli(['--config', d, 'down', 'wg0'], { kernel: k, state: mem })).code, 0);
  t.deepEqual(mem.load().stopped, ['wg0']);
});

// ---- state files: damaged, unwritable ------------------------------------------------------

test('a damaged state file is a note and a fresh start, never a stack trace', async (t) => {
  for (const body of ['{"tables": {"1": ', '[]', '{"tables": 5}', '{"stopped": "wg0"}', '{"interfaces": {"wg0": {"addresses": null}}}', '\u0000\u0001', 'null']) {
    const d = confDir({ 'example.toml': EXAMPLE_TOML });
    const file = path.join(d, 'owned.json');
    writeFileSync(file, body);
    const notes: string[] = [];
    const store = new FileStateStore(file, (m) => notes.push(m));
    const k = fakeHost();
    const r = await cli(['--config', d, 'up', 'wg0'], { kernel: k, state: store });
    t.is(r.code, 0, `${JSON.stringify(body)}: ${r.err}`);
    t.notRegex(r.err, INTERNAL);
    t.is(notes.length, 1, JSON.stringify(body));
    t.regex(notes[0], /state file .* is damaged .*ignoring it/);
    t.true(k.log.length > 0);
  }
});

test('a state directory that cannot be written: exit 2 before any kernel write', async (t) => {
  const d = confDir({ 'example.toml': EXAMPLE_TOML, blocker: 'a file, not a directory' });
  const file = path.join(d, 'blocker', 'owned.json');
  for (const argv of [['up', 'wg0'], ['apply']]) {
    // the lock in the same unwritable place
    const k = fakeHost();
    const r = await cli(['--config', d, ...argv], { kernel: k, state: new FileStateStore(file), lockPath: path.join(d, 'blocker', 'lock') });
    t.is(r.code, 2, r.err);
    t.regex(r.err, /^wgsplit: cannot create the lock file .*blocker\/lock: .*WGSPLIT_STATE_DIR/m);
    t.deepEqual(k.log, []);
    // the lock elsewhere, the state file unwritable
    const k2 = fakeHost();
    const r2 = await cli(['--config', d, ...argv], { kernel: k2, state: new FileStateStore(file) });
    t.is(r2.code, 2, r2.err);
    t.regex(r2.err, /^wgsplit: cannot write the state file .*blocker\/owned\.json: .*WGSPLIT_STATE_DIR/m);
    t.notRegex(r2.err, INTERNAL);
    t.deepEqual(k2.log, []);
  }
  // read-only commands still work
  const r3 = await cli(['--config', d, 'diff'], { kernel: fakeHost(), state: new FileStateStore(file) });
  t.is(r3.code, 1, r3.err);
});

// ---- command line and environment -----------------------------------------------------------

test('command-line values that used to be accepted and misbehave are usage errors', async (t) => {
  const usage = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
    const e = t.throws(() => parseCli(argv, env, false), { instanceOf: WgsplitError }, argv.join(' '));
    t.is(e?.code, 'USAGE', argv.join(' '));
    return e?.message ?? '';
  };
  // setInterval runs an interval over 2^31-1 ms every 1 ms; under a second it is a busy loop
  t.regex(usage(['watch', '--resync', '99999999999']), /--resync takes seconds, 1-2147483 \(0 to disable\)/);
  usage(['watch', '--resync', '0.001']);
  t.is(parseCli(['watch', '--resync', '0'], {}, false).resyncSeconds, 0);
  t.is(parseCli(['watch', '--resync', '2147483'], {}, false).resyncSeconds, 2147483);
  // `down ""` said "already in sync" (exit 0); a 300-character name went to the kernel
  t.regex(usage(['down', '']), /"" is not an interface name/);
  usage(['up', 'a'.repeat(16)]);
  usage(['up', 'wg0;rm']);
  usage(['up', 'wg 0']);
  t.is(parseCli(['up', 'wg0.1@x:y'], {}, false).positionals[0], 'wg0.1@x:y');
  // an empty --config meant the current directory
  t.regex(usage(['--config', '', 'apply']), /--config needs a directory/);
  t.is(parseCli(['apply'], { WGSPLIT_CONFIG: '' }, false).config, '/etc/wgsplit');
});

test('an empty WGSPLIT_STATE_DIR is unset (it used to put the state files in /), a relative one absolute', async (t) => {
  const { stateDir } = await import('../../src/state/owned.js');
  const saved = process.env.WGSPLIT_STATE_DIR;
  try {
    process.env.WGSPLIT_STATE_DIR = '';
    t.is(stateDir(), '/run/wgsplit');
    process.env.WGSPLIT_STATE_DIR = 'rel/dir';
    t.is(stateDir(), path.resolve('rel/dir'));
  } finally {
    if (saved === undefined) delete process.env.WGSPLIT_STATE_DIR;
    else process.env.WGSPLIT_STATE_DIR = saved;
  }
});

test('a byte order mark at the start of a profile or a list file is not part of the text', async (t) => {
  const d = confDir({ 'l.txt': '\uFEFF203.0.113.0/24\n', 'example.toml': `\uFEFF${EXAMPLE_TOML}exclude_files = ["l.txt"]\n` });
  const k = fakeHost();
  const r = await cli(['--config', d, 'apply'], { kernel: k });
  t.is(r.code, 0, r.err);
  t.true(k.log.includes('add route throw 203.0.113.0/24 table 10086 proto wgsplit'), k.log.join('\n'));
});
