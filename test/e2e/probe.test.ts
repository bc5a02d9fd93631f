/**
 * The real kernel, in a fresh network namespace of this test's own (no sandbox, no
 * WireGuard): the rule-selector probe behind mode = "auto" (src/kernel/probe.ts) and the
 * nft scripts of fwmark mode (src/compile/nftScript.ts) as this machine's nft and kernel
 * take them. Needs root.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { renderNft, type NftFragment } from '../../src/compile/nftScript.js';
import { parsePrefix, type Prefix } from '../../src/model/prefix.js';
import { GOLDEN_WEB_HASH, GOLDEN_WEB_SCRIPT } from '../helpers/nftGolden.js';
import { NFT } from '../helpers/pathScenarios.js';

const execFileP = promisify(execFile);
const NS = `wgpr-${process.pid}`;
const PROBE_URL = new URL('../../src/kernel/probe.js', import.meta.url).href;
const NETLINK_URL = new URL('../../src/kernel/netlink.js', import.meta.url).href;
let tmp: string;

interface Result {
  stdout: string;
  stderr: string;
  exitCode: number;
}

async function inNs(argv: string[]): Promise<Result> {
  try {
    const { stdout, stderr } = await execFileP('ip', ['netns', 'exec', NS, ...argv], { encoding: 'utf8', timeout: 30_000 });
    return { stdout, stderr, exitCode: 0 };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; code?: number | string; message: string };
    return { stdout: err.stdout ?? '', stderr: err.stderr || err.message, exitCode: typeof err.code === 'number' ? err.code : -1 };
  }
}

/**
 * `n` probes at once in one process, each on its own netlink socket as each `wgsplit`
 * process has (the kernel sees the same thing as from n processes, with no start-up jitter).
 */
async function probes(n: number): Promise<{ supported: boolean; missing: string[] }[]> {
  const code = `const { Rtnl } = await import(${JSON.stringify(NETLINK_URL)});
const { probeRuleSelectors } = await import(${JSON.stringify(PROBE_URL)});
const socks = Array.from({ length: ${n} }, () => new Rtnl());
try { console.log(JSON.stringify(await Promise.all(socks.map((nl) => probeRuleSelectors(nl))))); } finally { for (const nl of socks) nl.close(); }`;
  const r = await inNs([process.execPath, '--input-type=module', '-e', code]);
  if (r.exitCode !== 0) throw new Error(`probe: exit ${r.exitCode}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const probe = async () => (await probes(1))[0];

const rules = async () => (await inNs(['ip', 'rule'])).stdout + (await inNs(['ip', '-6', 'rule'])).stdout;

/** `nft -f FILE` in the namespace. */
async function nftScript(script: string): Promise<Result> {
  const file = path.join(tmp, `s${Math.random().toString(36).slice(2)}.nft`);
  writeFileSync(file, script);
  return inNs([NFT, '-f', file]);
}

test.before(async () => {
  await execFileP('ip', ['netns', 'add', NS]);
  await inNs(['ip', 'link', 'set', 'lo', 'up']);
  tmp = mkdtempSync(path.join(tmpdir(), 'wgsplit-probe-'));
});

test.after.always(async () => {
  await execFileP('ip', ['netns', 'del', NS]).catch(() => undefined);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test.serial('probeRuleSelectors: this kernel keeps every selector, nothing missing, and no rule is left behind', async (t) => {
  const before = await rules();
  t.deepEqual(await probe(), { supported: true, missing: [], definitive: true });
  t.is(await rules(), before);
});

test.serial("probeRuleSelectors leaves someone else's rule at its priority alone", async (t) => {
  // 32765 is the probe's priority; a neighbour's rule there (another table) must survive.
  t.is((await inNs(['ip', 'rule', 'add', 'pref', '32765', 'lookup', '100'])).exitCode, 0);
  t.is((await inNs(['ip', '-6', 'rule', 'add', 'pref', '32765', 'lookup', '100'])).exitCode, 0);
  const before = await rules();
  t.regex(before, /^32765:\s+from all lookup 100/m);
  t.deepEqual(await probe(), { supported: true, missing: [], definitive: true });
  t.is(await rules(), before);
  await inNs(['ip', 'rule', 'del', 'pref', '32765', 'lookup', '100']);
  await inNs(['ip', '-6', 'rule', 'del', 'pref', '32765', 'lookup', '100']);
});

test.serial('probes running at once (`status` next to a PostUp, two tunnels coming up at boot) do not disturb each other', async (t) => {
  // diff/status/explain do not take wgsplit's lock, and the answer is cached for the whole
  // boot: a probe that saw another's rule must not conclude the kernel lacks selectors.
  const before = await rules();
  const results = (await Promise.all([probes(4), probes(4), probes(4)])).flat();
  t.deepEqual(results, Array.from({ length: 12 }, () => ({ supported: true, missing: [], definitive: true })));
  t.is(await rules(), before);
});

test.serial('the golden nft script is accepted by nft and the kernel, both when the table is absent and when it is replaced', async (t) => {
  for (const round of ['absent', 'present']) {
    const r = await nftScript(GOLDEN_WEB_SCRIPT);
    t.is(r.exitCode, 0, `${round}: ${r.stderr}`);
  }
  // What observeNft reads (src/kernel/nft.ts): the hash in the table's comment, without elements.
  const listed = await inNs([NFT, '-t', 'list', 'table', 'inet', 'wgsplit']);
  t.is(listed.exitCode, 0, listed.stderr);
  t.regex(listed.stdout, new RegExp(`comment "wgsplit ${GOLDEN_WEB_HASH}"`));
  t.is((await inNs([NFT, 'list', 'tables'])).stdout.trim(), 'table inet wgsplit', 'replaced, not added twice');
  const set = await inNs([NFT, 'list', 'set', 'inet', 'wgsplit', 'web_v4_exclude']);
  t.regex(set.stdout, /10\.0\.0\.0\/8,\s+20\.0\.2\.1,\s+198\.51\.100\.0\/24 \}/);
  const chain = await inNs([NFT, 'list', 'chain', 'inet', 'wgsplit', 'divert']);
  t.regex(chain.stdout, /th dport \{ 80, 443, 8000-8999 \} meta skuid \{ 1000, 2000-2999 \}/);
  t.is((await inNs([NFT, 'delete', 'table', 'inet', 'wgsplit'])).exitCode, 0);
});

const prefix = (s: string): Prefix => {
  const r = parsePrefix(s);
  if (!r.ok) throw new Error(r.reason);
  return r.prefix;
};

test.serial('nft takes the script whatever the profile file names are (leading digits, dashes, quotes, long names)', async (t) => {
  const names = ['10-office', 'office-a', 'office_a', 'home "lab"', 'über', 'x'.repeat(240)];
  const frags: NftFragment[] = names.flatMap((profile, i) =>
    ([4, 6] as const).map((family) => ({
      profile,
      family,
      priority: 10100 + i,
      iface: 'wg0',
      mark: (i + 1) << 24,
      mask: 0x0f000000,
      protocols: ['tcp' as const],
      dports: [],
      sports: [],
      uids: [],
      include: [prefix(family === 4 ? '0.0.0.0/0' : '::/0')],
      exclude: [prefix(family === 4 ? `10.${i}.0.0/16` : `fd00:${i}::/32`)],
    })),
  );
  const r = await nftScript(renderNft(frags)!.script);
  t.is(r.exitCode, 0, r.stderr);
  // Every profile got sets of its own: no two merged into one.
  const sets = (await inNs([NFT, 'list', 'sets', 'inet'])).stdout.match(/^\s*set \S+ \{/gm) ?? [];
  t.is(sets.length, names.length * 4);
  const excl = await inNs([NFT, 'list', 'table', 'inet', 'wgsplit']);
  for (let i = 0; i < names.length; i++) t.regex(excl.stdout, new RegExp(`10\\.${i}\\.0\\.0/16`));
  t.is((await inNs([NFT, 'delete', 'table', 'inet', 'wgsplit'])).exitCode, 0);
});
