/**
 * Issue 8, item 2, on the real kernel: a namespace that reuses a dead namespace's nsfs inode
 * number must not inherit its state record. `wgsplit up` then `down` in namespace A leaves
 * a record saying the interface is stopped; A is deleted; namespaces are created until one
 * gets A's inode (the kernel hands out the lowest free number, so holding the others makes
 * it come round); in that namespace B, `wgsplit watch` must install the policy, and say it
 * dropped A's record. Before the fix it logged "in sync" and installed nothing, forever.
 *
 * Bare namespaces (h8b-*) with a wireguard-go interface h8b0; no traffic leaves them.
 * Needs root.
 */
import test from 'ava';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CLI } from '../helpers/wgsplit.js';

const execFileP = promisify(execFile);
const WG = 'h8b0';
const A = 'h8b-a';
const PROFILE = `interface = "${WG}"\ntable = 10086\npriority = 10086\nprotocols = ["tcp"]\nexclude = ["@private"]\n`;

const made = new Set<string>();
const procs: ChildProcess[] = [];

async function sh(argv: string[], ok = true): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const r = await execFileP(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 30_000 });
    return { stdout: r.stdout, stderr: r.stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; code?: number };
    if (ok) throw new Error(`${argv.join(' ')}: ${err.stderr ?? e}`);
    return { stdout: err.stdout ?? '', stderr: err.stderr ?? String(e), code: typeof err.code === 'number' ? err.code : -1 };
  }
}

async function addNs(name: string): Promise<number> {
  await sh(['ip', 'netns', 'add', name]);
  made.add(name);
  return statSync(`/run/netns/${name}`).ino;
}

async function delNs(name: string): Promise<void> {
  await sh(['ip', 'netns', 'del', name], false);
  made.delete(name);
}

/** A WireGuard interface (wireguard-go, in the foreground so we hold its PID) with an address. */
async function wgUp(ns: string, loUp: boolean): Promise<ChildProcess> {
  const p = spawn('ip', ['netns', 'exec', ns, 'env', 'WG_PROCESS_FOREGROUND=1', 'wireguard-go', WG], { stdio: 'ignore' });
  procs.push(p);
  for (let i = 0; i < 200; i++) {
    if ((await sh(['ip', '-n', ns, 'link', 'show', WG], false)).code === 0) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  if (loUp) await sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  await sh(['ip', '-n', ns, 'addr', 'add', '10.253.0.2/24', 'dev', WG]);
  await sh(['ip', '-n', ns, 'link', 'set', WG, 'up']);
  return p;
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await gone;
}

const wgsplit = (ns: string, stateDir: string, conf: string, args: string[]) =>
  sh(['ip', 'netns', 'exec', ns, 'env', `WGSPLIT_STATE_DIR=${stateDir}`, process.execPath, CLI, '--config', conf, ...args], false);

const ourRules = async (ns: string) => (await sh(['ip', '-n', ns, 'rule', 'show', 'priority', '10086'])).stdout.trim();

async function cleanup(): Promise<void> {
  for (const p of procs.splice(0)) await stop(p);
  for (const n of [...made]) await delNs(n);
}
test.after.always(cleanup);

for (const loUp of [true, false]) test.serial(`a namespace that reuses a deleted one's inode does not inherit its "stopped" record: watch installs the policy (loopback ${loUp ? 'up, bound by its stamp' : 'never up, bound by net.ipv4.conf.lo.tag'})`, async (t) => {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'wgsplit-state-h8b-'));
  const conf = mkdtempSync(path.join(tmpdir(), 'wgsplit-conf-h8b-'));
  writeFileSync(path.join(conf, 'split.toml'), PROFILE, { mode: 0o644 });
  try {
    // Another test creating namespaces meanwhile (ava runs two files at once) can take A's
    // inode number first: then the whole scenario starts again with a new A.
    let b: string | undefined;
    let inoA = 0;
    let file = '';
    let recA: ReturnType<typeof JSON.parse> = {};
    let r: Awaited<ReturnType<typeof wgsplit>>;
    for (let attempt = 0; attempt < 4 && !b; attempt++) {
      const nameA = `${A}${attempt}`;
      // A failed attempt's record is of a namespace that is gone: only this A's may be there.
      for (const f of readdirSync(stateDir)) if (f.startsWith('owned-')) rmSync(path.join(stateDir, f));
      // Namespace A: up, then down. The record now says h8b0 is stopped.
      inoA = await addNs(nameA);
      const wgA = await wgUp(nameA, loUp);
      r = await wgsplit(nameA, stateDir, conf, ['up', WG]);
      t.is(r.code, 0, r.stderr);
      t.regex(await ourRules(nameA), /lookup 10086/);
      r = await wgsplit(nameA, stateDir, conf, ['down', WG]);
      t.is(r.code, 0, r.stderr);
      t.is(await ourRules(nameA), '');
      file = path.join(stateDir, `owned-${inoA}.json`);
      recA = JSON.parse(readFileSync(file, 'utf8'));
      t.deepEqual(recA.stopped, [WG]);
      t.regex(recA.namespace, new RegExp(` netns ${inoA} ${loUp ? 'lo' : 'tag'} [1-9]\\d*$`));
      if (!loUp) t.is((await sh(['ip', 'netns', 'exec', nameA, 'cat', '/proc/sys/net/ipv4/conf/lo/tag'])).stdout.trim(), recA.namespace.split(' ').pop());
      await stop(wgA);
      await delNs(nameA);

      // Namespace B gets A's inode number: hold every other number the kernel offers first.
      const holders: string[] = [];
      for (let i = 0; i < 300 && !b; i++) {
        const name = `h8b-n${loUp ? 'u' : 'd'}${attempt}-${i}`;
        const ino = await addNs(name);
        if (ino === inoA) b = name;
        else {
          holders.push(name);
          await new Promise((res) => setTimeout(res, 5)); // A's teardown is asynchronous
        }
      }
      for (const h of holders) await delNs(h);
    }
    if (!b) {
      t.fail(`in 4 attempts, no new namespace got A's inode within 300 tries (another program creating namespaces?)`);
      return;
    }
    t.is(statSync(`/run/netns/${b}`).ino, inoA);
    t.deepEqual(readdirSync(stateDir).filter((f) => f.startsWith('owned-')), [`owned-${inoA}.json`], 'B maps to the same state file');
    await wgUp(b, loUp);

    // The watcher in B: it must install the policy (A's "stopped" is not B's) and say why.
    const log: string[] = [];
    const w = spawn('ip', ['netns', 'exec', b, 'env', `WGSPLIT_STATE_DIR=${stateDir}`, process.execPath, CLI, '--config', conf, 'watch', '--log-json', '--resync', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    procs.push(w);
    w.stderr!.setEncoding('utf8').on('data', (d: string) => log.push(...d.split('\n').filter(Boolean)));
    let rules = '';
    for (let i = 0; i < 200 && !/lookup 10086/.test(rules); i++) {
      await new Promise((res) => setTimeout(res, 50));
      rules = await ourRules(b);
    }
    await stop(w);
    t.regex(rules, /from 0\.0\.0\.0 iif lo ipproto tcp lookup 10086 proto (wgsplit|87)/, log.join('\n'));
    t.true(
      log.some((l) => /written in another network namespace that had this one's inode number.*dropped, not applied here/.test(l)),
      log.join('\n'),
    );
    const recB = JSON.parse(readFileSync(file, 'utf8'));
    t.deepEqual(recB.stopped ?? [], []);
    t.not(recB.namespace, recA.namespace);
    // and B's own record is obeyed from now on: nothing to drop, nothing to do
    r = await wgsplit(b, stateDir, conf, ['diff']);
    t.is(r.code, 0, r.stdout + r.stderr);
    t.notRegex(r.stderr, /note/);
  } finally {
    await cleanup();
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(conf, { recursive: true, force: true });
  }
});
