/**
 * Drift inside wgsplit's own nftables table, on the real kernel with a real WireGuard
 * tunnel (a fwmark-mode profile in the sandbox): one of our rules deleted by handle, one
 * element of our exclusion set deleted, a chain flushed, `nft flush ruleset`. Without the
 * watcher `wgsplit diff` shows exactly that object and exits 1, and `apply` puts back
 * exactly that; with the watcher running (its `nft monitor` event source), each is
 * repaired and real connections take the tunnel again. Needs root.
 */
import test from 'ava';
import { ADDR, PORT, createSandbox, type Sandbox } from '../helpers/sandbox.js';
import { configDir, exampleProfile, removeConfigDir, wgsplitRunner, type WgsplitRunner } from '../helpers/wgsplit.js';
import { NFT } from '../helpers/pathScenarios.js';
import { assertConverged, isConverged, startWatcher, type WatcherProc } from '../helpers/watcher.js';

const PREFIX = 'wgwn';
const WG = 'wgwn0';

let sb: Sandbox;
let run: WgsplitRunner;
let dir: string;
let w: WatcherProc | undefined;
const ctx = () => ({ sb, run, dir, w: w! });

test.before(async () => {
  sb = await createSandbox(PREFIX, { wgIface: WG });
  run = wgsplitRunner(sb);
  dir = configDir({ example: exampleProfile(WG, 'mode = "fwmark"\n') });
});

test.after.always(async () => {
  await w?.kill();
  if (dir) removeConfigDir(dir);
  run?.cleanup();
  await sb?.destroy();
});

const nft = async (...args: string[]) => {
  const r = await sb.exec('host', [NFT, ...args]);
  if (r.exitCode !== 0) throw new Error(`nft ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const handleOf = async (chain: string, key: string) => {
  const m = new RegExp(`comment "${key.replace(/\//g, '\\/')} #[0-9a-f]+" # handle (\\d+)`).exec(await nft('-a', 'list', 'chain', 'inet', 'wgsplit', chain));
  if (!m) throw new Error(`no rule ${key} in ${chain}`);
  return m[1];
};

test.serial('without the watcher: a deleted rule and a deleted element are exactly the drift diff shows; apply restores exactly them', async (t) => {
  const up = await run(dir, ['up', WG]);
  t.is(up.exitCode, 0, up.stderr);
  t.is((await run(dir, ['diff'])).exitCode, 0);
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.http), ADDR.vpnPublic);

  await nft('delete', 'rule', 'inet', 'wgsplit', 'output', 'handle', await handleOf('output', 'example/v4/mark'));
  // The mark rule is gone: IPv4 TCP leaves directly, which is what diff must not hide.
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.http), ADDR.routerWan);
  const d = await run(dir, ['diff']);
  t.is(d.exitCode, 1, d.stdout + d.stderr);
  t.deepEqual(d.stdout.split('\n').filter((l) => /^\s+[-+~] /.test(l)).map((l) => l.trim().replace(/ ip daddr.*\[/, ' ... [')), ['+ nft rule output meta nfproto ipv4 meta mark & 0x0f000000 == 0 ct direction original meta l4proto { tcp } ... [example/v4/mark]']);
  const a = await run(dir, ['apply']);
  t.is(a.exitCode, 0, a.stderr);
  t.regex(a.stdout, /1 added/);
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.http), ADDR.vpnPublic);

  await nft('delete', 'element', 'inet', 'wgsplit', 'example_v4_exclude', '{ 10.0.0.0/8 }');
  const d2 = await run(dir, ['diff']);
  t.is(d2.exitCode, 1);
  t.deepEqual(d2.stdout.split('\n').filter((l) => /^\s+[-+~] /.test(l)).map((l) => l.trim()), ['+ element 10.0.0.0/8 (set example_v4_exclude)']);
  t.is((await run(dir, ['apply'])).exitCode, 0);
  t.is((await run(dir, ['diff'])).exitCode, 0);
  t.regex(await nft('list', 'set', 'inet', 'wgsplit', 'example_v4_exclude'), /10\.0\.0\.0\/8/);
});

test.serial('with the watcher: a deleted rule, a deleted element, a flushed chain and nft flush ruleset are repaired', async (t) => {
  w = await startWatcher(sb, run, dir);
  const cases: [string, () => Promise<unknown>][] = [
    ['rule deleted', async () => nft('delete', 'rule', 'inet', 'wgsplit', 'postrouting', 'handle', await handleOf('postrouting', 'example/v4/masquerade'))],
    ['element deleted', () => nft('delete', 'element', 'inet', 'wgsplit', 'example_v4_exclude', '{ 192.168.0.0/16 }')],
    ['chain flushed', () => nft('flush', 'chain', 'inet', 'wgsplit', 'output')],
    ['nft flush ruleset', () => nft('flush', 'ruleset')],
  ];
  for (const [what, disturb] of cases) {
    const mark = w.mark();
    await disturb();
    const fixed = await w.waitForLog((l) => isConverged(l), 5000, mark, `a repair after: ${what}`);
    t.regex(String(fixed.changes), /nft/, `${what}: ${JSON.stringify(fixed)}`);
    await assertConverged(t, ctx(), what);
  }
  // The nft event source is supervised like ip monitor: killed, it comes back.
  // Only the daemon's own child (-P): never another process of this machine.
  const pid = (await sb.exec('host', ['pgrep', '-P', String(w.pid), '-f', 'nft monitor'])).stdout.trim();
  t.regex(pid, /^\d+$/, 'exactly one nft monitor child of the daemon');
  const mark = w.mark();
  process.kill(Number(pid), 'SIGKILL');
  await w.waitForLog((l) => l.msg === 'nft event source restarted; re-syncing', 5000, mark, 'the nft monitor restart');
  const m2 = w.mark();
  await nft('delete', 'element', 'inet', 'wgsplit', 'example_v4_exclude', '{ 172.16.0.0/12 }');
  await w.waitForLog((l) => isConverged(l), 5000, m2, 'a repair after the restart');
  await assertConverged(t, ctx(), 'after the nft monitor restart');
});
