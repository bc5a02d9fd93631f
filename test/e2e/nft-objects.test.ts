/**
 * wgsplit's nftables table as objects on the real kernel, in a fresh network namespace of
 * this test's own: what compile wants, read back by the real adapter (src/kernel/nft.ts),
 * compares equal (no phantom drift from nft's own spelling); an element or a rule deleted
 * by hand is exactly one `+` in the diff, and applying the diff restores exactly that,
 * without re-creating the table or its sets. Needs root.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GOLDEN_WEB_SCRIPT, WEB_TOML } from '../helpers/nftGolden.js';
import { NFT } from '../helpers/pathScenarios.js';

const execFileP = promisify(execFile);
const NS = `wgno-${process.pid}`;
const CACHE = path.join(tmpdir(), `wgsplit-nft-cache-${process.pid}.json`);
const url = (p: string) => JSON.stringify(new URL(`../../src/${p}`, import.meta.url).href);

interface Result {
  stdout: string;
  stderr: string;
  exitCode: number;
}

async function inNs(argv: string[], input?: string): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile('ip', ['netns', 'exec', NS, ...argv], { encoding: 'utf8', timeout: 60_000, maxBuffer: 256 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ stdout, stderr: stderr || (err ? err.message : ''), exitCode: code });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

/**
 * In the namespace: compile the web profile (test/helpers/nftGolden.ts), observe the real
 * table, diff; with `apply`, also execute the diff and observe again. Prints JSON.
 */
async function reconcileNft(apply: boolean, toml = WEB_TOML): Promise<{ ops: string[]; after?: string[]; parity: string }> {
  const code = `
const { compile } = await import(${url('compile/compile.js')});
const { parseProfile } = await import(${url('profile/parse.js')});
const { NftKernel, observeByNft } = await import(${url('kernel/nft.js')});
// The cache file persists between runs of this script, as between runs of wgsplit.
const kernel = new NftKernel(${JSON.stringify(CACHE)});
const observeNft = () => kernel.observe();
const applyNft = (ops) => kernel.apply(ops);
const { diffNft } = await import(${url('plan/nftDiff.js')});
const { opText } = await import(${url('plan/render.js')});
const p = parseProfile('/etc/wgsplit/web.toml', ${JSON.stringify(toml)}).profile;
const facts = new Map([['wg0', { name: 'wg0', exists: true, up: true, addresses: { 4: ['10.253.0.2'], 6: ['fd00:253::2'] }, endpoints: [{ family: 4, address: '20.0.2.1', port: 51820 }] }]]);
const want = compile([p], facts).nft;
const text = (d) => [...d.put, ...d.late].map((o) => o.op + ' ' + opText(o));
const d = diffNft(want, await observeNft());
const out = { ops: text(d) };
if (${apply}) {
  if (d.put.length) await applyNft(d.put);
  if (d.late.length) await applyNft(d.late);
  out.after = text(diffNft(want, await observeNft()));
}
// Both readers (nfnetlink, and nft -j as the fallback) see the same objects.
// (nft 1.0.6 prints no table comment in JSON: the tag is compared only by the netlink reader.)
const norm = (o) => JSON.stringify({ ...o, tag: undefined, sets: o.sets.map((x) => ({ ...x, elements: [...x.elements].sort() })) });
out.parity = norm(await observeNft()) === norm(await observeByNft()) ? 'same' : norm(await observeNft()) + ' VS ' + norm(await observeByNft());
kernel.close();
console.log(JSON.stringify(out));`;
  const r = await inNs([process.execPath, '--input-type=module', '-e', code]);
  if (r.exitCode !== 0) throw new Error(`reconcileNft: exit ${r.exitCode}: ${r.stderr}`);
  const out = JSON.parse(r.stdout);
  if (out.parity !== 'same') throw new Error(`the nfnetlink and nft -j readers disagree:\n${out.parity}`);
  return out;
}

const nft = (...args: string[]) => inNs([NFT, ...args]);
const handles = async () => (await nft('-a', 'list', 'table', 'inet', 'wgsplit')).stdout;
/** Handles of the table and sets: the same ones mean nothing was re-created. */
async function identity(): Promise<string> {
  const j = JSON.parse((await nft('-j', 'list', 'table', 'inet', 'wgsplit')).stdout).nftables as Record<string, { name?: string; handle?: number }>[];
  return j.flatMap((o) => Object.entries(o).filter(([k]) => k === 'table' || k === 'set' || k === 'chain').map(([k, v]) => `${k} ${v.name} ${v.handle}`)).join('\n');
}

test.before(async () => {
  await execFileP('ip', ['netns', 'add', NS]);
  await inNs(['ip', 'link', 'set', 'lo', 'up']);
});

test.after.always(async () => {
  await execFileP('ip', ['netns', 'del', NS]).catch(() => undefined);
  rmSync(CACHE, { force: true });
});

test.serial('the golden script as loaded by nft reads back as exactly what compile wants: no drift from spelling', async (t) => {
  const r = await inNs([NFT, '-f', '-'], GOLDEN_WEB_SCRIPT);
  t.is(r.exitCode, 0, r.stderr);
  t.deepEqual((await reconcileNft(false)).ops, []);
  t.is((await nft('delete', 'table', 'inet', 'wgsplit')).exitCode, 0);
});

test.serial('from nothing: apply creates every object; a second pass finds nothing to do', async (t) => {
  const first = await reconcileNft(true);
  t.true(first.ops.includes('add nft table inet wgsplit'), first.ops.join('\n'));
  t.true(first.ops.some((o) => /^add element 10\.0\.0\.0\/8 \(set web_v4_exclude\)$/.test(o)));
  t.deepEqual(first.after, []);
});

test.serial('one element and one rule deleted by hand: the diff is exactly those, apply restores exactly those', async (t) => {
  const before = await identity();
  t.is((await nft('delete', 'element', 'inet', 'wgsplit', 'web_v4_exclude', '{ 198.51.100.0/24 }')).exitCode, 0);
  const handle = /masquerade comment "web\/v6\/masquerade #[0-9a-f]+" # handle (\d+)/.exec(await handles())?.[1];
  t.truthy(handle);
  t.is((await nft('delete', 'rule', 'inet', 'wgsplit', 'postrouting', 'handle', handle!)).exitCode, 0);
  const r = await reconcileNft(true);
  t.deepEqual(r.ops.sort(), [
    'add element 198.51.100.0/24 (set web_v4_exclude)',
    'add nft rule postrouting meta nfproto ipv6 oifname "wg0" meta mark & 0x0f000000 == 0x01000000 masquerade [web/v6/masquerade]',
  ]);
  t.deepEqual(r.after, []);
  t.is(await identity(), before, 'the table, its chains and sets were not re-created');
  // The restored rule is back in its place: after the IPv4 one, like compile lists them.
  t.regex(await handles(), /web\/v4\/masquerade[^\n]*\n[^\n]*web\/v6\/masquerade/);
});

test.serial('an edited profile swaps only the rules and elements that changed; a rule put into our chain by someone else goes', async (t) => {
  t.is((await nft('add', 'rule', 'inet', 'wgsplit', 'output', 'meta', 'mark', 'set', '0x42')).exitCode, 0);
  const before = await identity();
  const edited = WEB_TOML.replace('"198.51.100.7/32", ', '"192.0.2.0/24", ').replace('dports = [80, 443, "8000-8999"]', 'dports = [443]');
  const r = await reconcileNft(true, edited);
  const ops = r.ops.sort();
  t.true(ops.includes('add element 192.0.2.0/24 (set web_v4_exclude)'), ops.join('\n'));
  t.true(ops.some((o) => /^delete nft rule output handle \d+ \(no comment: not written by wgsplit\)$/.test(o)), ops.join('\n'));
  t.is(ops.filter((o) => /^add nft rule output .*th dport \{ 443 \}/.test(o)).length, 2, 'both mark rules carry the new ports');
  t.is(ops.filter((o) => /^delete nft rule output handle \d+ \[web\/v[46]\/mark\]$/.test(o)).length, 2);
  t.false(ops.some((o) => /masquerade|nft set|nft table|nft chain/.test(o)), ops.join('\n'));
  t.deepEqual(r.after, []);
  t.is(await identity(), before);
});

test.serial('nft flush ruleset: everything is created again', async (t) => {
  t.is((await nft('flush', 'ruleset')).exitCode, 0);
  const r = await reconcileNft(true);
  t.true(r.ops.includes('add nft table inet wgsplit'));
  t.deepEqual(r.after, []);
});
