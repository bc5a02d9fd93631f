/**
 * The real kernel, in a fresh network namespace of this test's own (no sandbox, no
 * WireGuard): the rule-selector probe behind mode = "auto" (src/kernel/probe.ts) as this
 * machine's kernel takes it. Needs root. (nft objects: test/e2e/nft-objects.test.ts.)
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

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
