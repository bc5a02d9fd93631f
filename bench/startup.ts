/**
 * Benchmark S (issue 14, goal 1): the no-op `wgsplit up IFACE` every wg-quick PostUp runs,
 * against node's own start-up (`node -e 0`), both as whole cold processes in the sandbox's
 * host namespace with a real wireguard-go interface. The commands alternate round by round,
 * so load from other work on the machine hits both alike; medians.
 */
import { log, topologyUp } from './ns.js';
import { fmtMiB, fmtMs, median, table } from './stats.js';
import { configDir, exampleProfile, MAIN, tempDir, timedInNs, wgsplit, wroteNothing } from './wgsplit.js';

const PREFIX = 'wgbnu';
const IFACE = 'wgbnu0';
const NS = `${PREFIX}-host`;
/** issue 14: no-op `up` within node's own start-up + 60 ms */
const GOAL_MS = 60;

export async function startupBench(o: { quick: boolean }): Promise<string> {
  const rounds = o.quick ? 10 : 40;
  log(`S: sandbox ${PREFIX} with wireguard-go ${IFACE}, ${rounds} rounds`);
  await topologyUp(PREFIX, IFACE);
  const cfg = configDir('startup', { 'tcp.toml': exampleProfile(IFACE) });
  const state = tempDir('startup-state');
  const first = await wgsplit(NS, cfg, state, ['up', IFACE]);
  if (first.exitCode !== 0) throw new Error(`wgsplit up ${IFACE}: ${first.stderr || first.stdout}`);
  const node: number[] = [];
  const up: number[] = [];
  const version: number[] = [];
  const rss: number[] = [];
  let wrote = 0;
  const nodeRss: number[] = [];
  // Two warm-up rounds (page cache, the code cache written by the first kernel run).
  for (let i = -2; i < rounds; i++) {
    const a = await timedInNs(NS, process.execPath, ['-e', '0'], { rss: true });
    const b = await wgsplit(NS, cfg, state, ['up', IFACE], true);
    const c = await timedInNs(NS, process.execPath, [MAIN, '--version']);
    if (b.exitCode !== 0) throw new Error(`wgsplit up ${IFACE}: ${b.stderr || b.stdout}`);
    if (i < 0) continue;
    node.push(a.wallMs);
    up.push(b.wallMs);
    version.push(c.wallMs);
    if (b.maxRssKiB) rss.push(b.maxRssKiB);
    if (a.maxRssKiB) nodeRss.push(a.maxRssKiB);
    if (!wroteNothing(b.stdout)) wrote++;
  }
  const base = median(node);
  // The difference of medians and the median of per-round differences tell the same story
  // when the machine is quiet; the per-round one is steadier when it is not.
  const over = median(up) - base;
  const perRound = median(up.map((u, i) => u - node[i]));
  const rows = [
    ['`node -e 0` (baseline)', fmtMs(base), '-', fmtMiB(median(nodeRss))],
    ['`wgsplit --version`', fmtMs(median(version)), `+${fmtMs(median(version) - base)}`, '-'],
    [`\`wgsplit up ${IFACE}\`, nothing to change`, fmtMs(median(up)), `+${fmtMs(over)} (per round: +${fmtMs(perRound)})`, fmtMiB(median(rss))],
  ];
  return [
    '## S. Start-up: no-op `wgsplit up` vs node itself (issue 14)',
    '',
    `Sandbox \`test/sandbox/topology.sh up ${PREFIX} ${IFACE}\` (wireguard-go), profile \`profiles/tcp-internet.toml\` with \`interface = "${IFACE}"\`, applied once before. ` +
      `Each round runs \`ip netns exec ${NS} node -e 0\`, then \`... node dist/src/cli/main.cjs --config DIR up ${IFACE}\`, then \`--version\`; ${rounds} rounds after 2 warm-up rounds; medians of whole cold processes; peak RSS from GNU time.`,
    '',
    table(['command', 'wall (median)', 'over `node -e 0`', 'peak RSS'], rows),
    '',
    `Goal (issue 14): within node's start-up + ${GOAL_MS} ms: **${over <= GOAL_MS ? 'met' : 'not met'}** (+${fmtMs(over)}). ` +
      `Runs that wrote something: ${wrote} of ${rounds} (must be 0).`,
  ].join('\n');
}
