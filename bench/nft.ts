/**
 * Benchmark D (issue 9): wgsplit's nftables table as objects, at N excluded prefixes in one
 * fwmark profile. In the same run and namespace: the full load from nothing (whole process),
 * the no-op re-apply (after a foreign nf_tables commit, the marker below: the generation
 * moved, so the table is read in full, the worst case of a no-op), and a one-line change
 * to the list file (one prefix replaced by another), each against `nft -f` loading the same
 * set from a script (the baseline). The one-line change is checked with `nft monitor`: it
 * must add and delete exactly one element and re-create no table or set.
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNetns, inNs, ipBatch, log, spawnTracked, sleep } from './ns.js';
import { randomSlash24s } from './prefixes.js';
import { fmtMiB, fmtMs, fmtRatio, median, table } from './stats.js';
import { configDir, tempDir, timedInNs, wgsplit, wroteNothing } from './wgsplit.js';

const NS = 'wgbn-nft';
const IFACE = 'wgbn0';
const NFT = '/usr/sbin/nft';

export async function nftBench(o: { quick: boolean }): Promise<string> {
  const sizes = o.quick ? [10_000] : [10_000, 100_000];
  const reps = o.quick ? 1 : 3;
  await createNetns(NS);
  await ipBatch(NS, [`link add ${IFACE} type veth peer name ${IFACE}p`, `addr add 10.99.0.2/24 dev ${IFACE}`, `link set ${IFACE} up`, `link set ${IFACE}p up`]);
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const n of sizes) {
    const prefixes = randomSlash24s(n, 7);
    const s = { baseline: [] as number[], full: [] as number[], noop: [] as number[], one: [] as number[], rss: [] as number[] };
    for (let rep = 0; rep < reps; rep++) {
      log(`nft: ${n} prefixes, rep ${rep + 1}/${reps}`);
      await inNs(NS, NFT, ['flush', 'ruleset'], { reject: false });
      const script = join(tempDir('nft-script'), 'set.nft');
      writeFileSync(script, `table inet bench {\n set s { type ipv4_addr; flags interval; elements = {\n${prefixes.join(',\n')}\n } }\n}\n`);
      s.baseline.push((await timedInNs(NS, NFT, ['-f', script])).wallMs);
      await inNs(NS, NFT, ['flush', 'ruleset'], { reject: false });
      const list = prefixes.join('\n') + '\n';
      const dir = configDir('nft', { 'big.toml': `interface = "${IFACE}"\nmode = "fwmark"\nfamilies = ["ipv4"]\nexclude_files = ["big.txt"]\n`, 'big.txt': list });
      const state = tempDir('nft-state');
      const full = await wgsplit(NS, dir, state, ['apply'], true);
      if (full.exitCode !== 0) throw new Error(`wgsplit apply: ${full.stderr}`);
      s.full.push(full.wallMs);
      if (full.maxRssKiB) s.rss.push(full.maxRssKiB);
      // One line of the list replaced: one element out, one in, watched by nft monitor.
      const monitorLog = join(tempDir('nft-monitor'), 'monitor.txt');
      writeFileSync(monitorLog, '');
      const mon = spawnTracked('nft monitor', 'ip', ['netns', 'exec', NS, NFT, 'monitor']);
      mon.proc.stdout?.on('data', (d: Buffer) => appendFileSync(monitorLog, d));
      // nft monitor listens only once it has loaded its cache (all 100k elements): wait until
      // it reports a marker change of our own before changing anything.
      for (let i = 0; i < 300 && !readFileSync(monitorLog, 'utf8').includes('wgbench_ready'); i++) {
        await inNs(NS, NFT, ['add', 'table', 'inet', 'wgbench_ready'], { reject: false });
        await inNs(NS, NFT, ['delete', 'table', 'inet', 'wgbench_ready'], { reject: false });
        await sleep(100);
      }
      if (!readFileSync(monitorLog, 'utf8').includes('wgbench_ready')) notes.push(`${n}: nft monitor never reported the marker: the one-line check below is not evidence`);
      // The marker was a commit (it moves the nf_tables generation, so wgsplit reads the
      // table once more): the no-op re-apply comes after it, as after any foreign change.
      const noop = await wgsplit(NS, dir, state, ['apply']);
      if (!wroteNothing(noop.stdout)) notes.push(`${n}: the no-op re-apply wrote: ${noop.stdout.trim()}`);
      s.noop.push(noop.wallMs);
      const lines = list.split('\n');
      lines[Math.floor(n / 2)] = `${100 + rep}.${200 + rep}.77.0/24`;
      writeFileSync(join(dir, 'big.txt'), lines.join('\n'));
      const one = await wgsplit(NS, dir, state, ['apply']);
      if (one.exitCode !== 0) throw new Error(`wgsplit apply (one line): ${one.stderr}`);
      s.one.push(one.wallMs);
      await sleep(300);
      await mon.stop();
      const seen = readFileSync(monitorLog, 'utf8').split('\n').filter((l) => / inet wgsplit /.test(l) || /inet wgsplit$/.test(l));
      const created = seen.filter((l) => /^(add|delete) (table|set|chain) /.test(l));
      const elements = seen.filter((l) => /^(add|delete) element /.test(l));
      if (rep === 0) notes.push(`${n}: the one-line change as nft monitor saw it: ${seen.length ? seen.map((l) => `\`${l.trim()}\``).join(', ') : '(nothing)'}${created.length ? ' (**a table, set or chain was re-created**)' : ''}`);
      if (created.length || elements.length > 3) notes.push(`${n}: rep ${rep + 1}: ${created.length} table/set/chain events, ${elements.length} element events`);
    }
    const b = median(s.baseline);
    rows.push([
      n.toLocaleString('en'),
      fmtMs(b),
      `${fmtMs(median(s.full))} (${fmtRatio(median(s.full) / b)})`,
      `${fmtMs(median(s.noop))} (${fmtRatio(median(s.noop) / b)})`,
      `${fmtMs(median(s.one))} (${fmtRatio(median(s.one) / b)}; ${fmtRatio(median(s.one) / median(s.full))} of the full load)`,
      s.rss.length ? fmtMiB(median(s.rss)) : '-',
    ]);
  }
  return [
    '## D. nftables table as objects: fwmark mode, N excluded prefixes (issue 9)',
    '',
    `Whole processes, median of ${reps}. Baseline: \`nft -f\` of a script holding the same set, in the same namespace and run.`,
    '',
    table(['prefixes', '`nft -f` (baseline)', 'wgsplit apply from nothing', 'no-op re-apply', 'one list line changed', 'peak RSS (full load)'], rows),
    '',
    ...notes.map((x) => `- ${x}`),
  ].join('\n');
}
