/**
 * Benchmark C (issue 4): per-packet cost. TCP throughput from the managed namespace to a
 * server namespace over a veth, with 10k excluded prefixes, under
 *   - no policy at all,
 *   - wgsplit rule mode (ip rule ipproto tcp -> table with 10k throws),
 *   - seed 001's way: a linear iptables chain of 10k `-d P -j RETURN` rules jumped to from
 *     mangle OUTPUT, then `-p tcp -j MARK` and `ip rule fwmark`,
 *   - wgsplit fwmark mode, when this build has it.
 * The server's address is inside one of the excluded prefixes, so its packets meet the
 * policy but go direct; in the iptables chain that prefix is the LAST rule (the cost every
 * packet bound for the tunnel pays). A second veth named like the profile's interface
 * stands in for the tunnel; like a WireGuard interface it does no ARP (NOARP), so a packet
 * routed into it is sent at once and counted.
 */
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { createNetns, inNs, ip, ipBatch, log, REPO, run, sleep, spawnTracked } from './ns.js';
import { randomSlash24s } from './prefixes.js';
import { fmtRatio, median, table } from './stats.js';
import { configDir, exampleProfile, probeFwmark, tempDir, wgsplit } from './wgsplit.js';

const CLI = 'wgbn-cli';
const SRV = 'wgbn-srv';
const IFACE = 'wgbv0';
const TABLE = 10086;
const IPT_TABLE = 10087;
const PORT = 5201;
const BLAST = join(REPO, 'bench/tcpblast.mjs');

export interface ThroughputOptions {
  quick: boolean;
}

type Mode = 'none' | 'rule' | 'iptables' | 'fwmark';

const LABEL: Record<Mode, string> = {
  none: 'no policy at all',
  rule: 'wgsplit rule mode (10k throws in table 10086)',
  iptables: 'linear iptables chain, 10k RETURN rules in mangle OUTPUT (seed 001)',
  fwmark: 'wgsplit fwmark mode (10k prefixes)',
};

async function reset(): Promise<void> {
  for (const t of [TABLE, IPT_TABLE]) {
    await run('ip', ['-n', CLI, '-4', 'route', 'flush', 'table', String(t)], { reject: false });
    await run('ip', ['-n', CLI, '-6', 'route', 'flush', 'table', String(t)], { reject: false });
  }
  await run('ip', ['-n', CLI, '-4', 'rule', 'flush', 'protocol', '87'], { reject: false });
  await run('ip', ['-n', CLI, '-6', 'rule', 'flush', 'protocol', '87'], { reject: false });
  await run('ip', ['-n', CLI, 'rule', 'del', 'pref', String(IPT_TABLE)], { reject: false });
  // iptables here is iptables-nft: flushing the namespace's ruleset removes its chains too.
  await inNs(CLI, 'nft', ['flush', 'ruleset'], { reject: false });
}

function iptablesRules(list: string[]): string {
  return [
    '*mangle',
    ':WGBENCH - [0:0]',
    '-A OUTPUT -j WGBENCH',
    ...list.map((p) => `-A WGBENCH -d ${p} -j RETURN`),
    '-A WGBENCH -p tcp -j MARK --set-mark 0x1',
    'COMMIT',
    '',
  ].join('\n');
}

async function txPackets(dev: string): Promise<number> {
  const j = JSON.parse(await ip(CLI, '-s', '-j', 'link', 'show', dev));
  return Number(j[0]?.stats64?.tx?.packets ?? NaN);
}

/**
 * Does a TCP connection to a destination that is NOT excluded really leave through the
 * stand-in tunnel? Real packets, so marks set by netfilter count too (which
 * `ip route get` cannot show). Nothing answers there: one SYN is enough.
 */
async function divertsToTunnel(): Promise<boolean> {
  const before = await txPackets(IFACE);
  await inNs(CLI, process.execPath, ['-e', "require('net').connect(80, '8.8.8.8').on('error', () => {}); setTimeout(() => process.exit(0), 300)"], { reject: false });
  return (await txPackets(IFACE)) > before;
}

async function routeGet(dst: string): Promise<string> {
  return (await ip(CLI, 'route', 'get', dst, 'ipproto', 'tcp')).split('\n')[0].replace(/\s+/g, ' ').trim();
}

export async function throughputBench(o: ThroughputOptions): Promise<string> {
  // Short runs in several rounds, every policy once per round: a single TCP stream on a
  // shared 2-vCPU machine swings by 2x with the neighbours' load, so each policy is compared
  // with the no-policy run of its own round.
  const secs = o.quick ? 1 : 2;
  const reps = o.quick ? 1 : 5;
  const list = randomSlash24s(10_000, 7);
  const serverNet = list[list.length - 1];
  const server = serverNet.replace(/\.0\/24$/, '.10');
  log(`C: namespaces ${CLI} -> ${SRV}, server ${server} (in excluded ${serverNet}), ${reps} rounds of ${secs} s per policy`);

  await createNetns(CLI);
  await createNetns(SRV);
  await run('ip', ['-n', CLI, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', SRV]);
  await run('ip', ['-n', CLI, 'link', 'add', IFACE, 'type', 'veth', 'peer', 'name', 'tun0', 'netns', SRV]);
  await ipBatch(CLI, ['addr add 10.77.0.1/24 dev eth0', 'link set eth0 up', `addr add 10.99.0.2/24 dev ${IFACE}`, `link set ${IFACE} arp off`, `link set ${IFACE} up`, 'route add default via 10.77.0.2']);
  await ipBatch(SRV, ['addr add 10.77.0.2/24 dev eth0', 'link set eth0 up', 'addr add 10.99.0.1/24 dev tun0', 'link set tun0 up', `addr add ${server}/32 dev lo`]);

  const srv = spawnTracked('tcpblast server', 'ip', ['netns', 'exec', SRV, process.execPath, BLAST, 'server', '0.0.0.0', String(PORT)], { stdout: 'pipe' });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('tcpblast server did not start')), 5000);
    createInterface({ input: srv.proc.stdout! }).on('line', (l) => {
      if (l === 'ready') {
        clearTimeout(t);
        resolve();
      }
    });
  });

  const fw = await probeFwmark(CLI, IFACE);
  const modes: Mode[] = ['none', 'rule', 'iptables', ...(fw.ok ? (['fwmark'] as Mode[]) : [])];
  const body = list.join('\n') + '\n';
  const cfg: Partial<Record<Mode, string>> = {
    rule: configDir('tput-rule', { 'tcp.toml': exampleProfile(IFACE, ['mode = "rule"', 'exclude_files = ["list.txt"]']), 'list.txt': body }),
  };
  if (fw.ok) cfg.fwmark = configDir('tput-fw', { 'tcp.toml': exampleProfile(IFACE, ['mode = "fwmark"', 'exclude_files = ["list.txt"]']), 'list.txt': body });
  const iptInput = iptablesRules(list);

  const mbps = new Map<Mode, number[]>(modes.map((m) => [m, []]));
  const ratios = new Map<Mode, number[]>(modes.map((m) => [m, []]));
  const errors = new Map<Mode, string>();
  const paths = new Map<Mode, string>();
  let iptPackets = NaN;

  for (let rep = 0; rep < reps; rep++) {
    for (const m of modes) {
      if (errors.has(m)) continue;
      await reset();
      if (m === 'rule' || m === 'fwmark') {
        const r = await wgsplit(CLI, cfg[m]!, tempDir(`tput-state-${m}`), ['apply']);
        if (r.exitCode !== 0) {
          errors.set(m, (r.stderr.trim() || r.stdout.trim()).split('\n')[0]);
          continue;
        }
      } else if (m === 'iptables') {
        await inNs(CLI, 'iptables-restore', ['--noflush'], { input: iptInput });
        await ipBatch(CLI, [`rule add pref ${IPT_TABLE} fwmark 0x1 lookup ${IPT_TABLE}`, `route add default dev ${IFACE} table ${IPT_TABLE}`]);
      }
      if (rep === 0) paths.set(m, `server \`${await routeGet(server)}\`, TCP to 8.8.8.8 ${(await divertsToTunnel()) ? `leaves through ${IFACE}` : 'goes direct'}`);
      await sleep(200);
      const r = await inNs(CLI, process.execPath, [BLAST, 'client', server, String(PORT), String(secs)], { reject: false });
      if (r.exitCode !== 0) {
        errors.set(m, String(r.stderr).trim().split('\n')[0] || `exit ${r.exitCode}`);
        continue;
      }
      const out = JSON.parse(String(r.stdout).trim().split('\n').pop()!);
      mbps.get(m)!.push(out.MBps);
      const base = mbps.get('none')![rep];
      if (base) ratios.get(m)!.push(out.MBps / base);
      log(`C: round ${rep + 1}/${reps} ${m}: ${out.MBps.toFixed(0)} MB/s`);
      if (m === 'iptables' && rep === 0) {
        // Packets that walked the whole chain to the server's RETURN (the last one).
        const dump = String((await inNs(CLI, 'iptables', ['-t', 'mangle', '-L', 'WGBENCH', '-v', '-n', '-x'])).stdout);
        const line = dump.split('\n').find((l) => l.includes(serverNet));
        iptPackets = line ? Number(line.trim().split(/\s+/)[0]) : NaN;
      }
    }
  }
  await reset();
  await srv.stop();

  const rows = modes.map((m) => {
    if (errors.has(m)) return [LABEL[m], `error: ${errors.get(m)}`, '-', '-', '-'];
    const xs = mbps.get(m)!;
    const rs = ratios.get(m)!;
    return [
      LABEL[m],
      median(xs).toFixed(0),
      xs.map((x) => x.toFixed(0)).join(', '),
      m === 'none' ? '1.00x' : fmtRatio(median(rs)),
      m === 'none' ? '-' : `${fmtRatio(Math.min(...rs))} - ${fmtRatio(Math.max(...rs))}`,
    ];
  });
  if (!fw.ok) rows.push(['wgsplit fwmark mode', 'fwmark: not available in this build', '-', '-', '-']);
  return [
    '## C. Per-packet cost: TCP throughput with 10k excluded prefixes (issue 4)',
    '',
    `One TCP stream (bench/tcpblast.mjs, node, 1 MiB writes, ${secs} s) from \`${CLI}\` to \`${SRV}\` over a veth; the server ${server} lies in the ` +
      `excluded ${serverNet}, so its packets meet the policy but go direct. ${reps} rounds, every policy once per round; ` +
      '"vs no policy" is the median over rounds of (policy / no policy in the same round). ' +
      `In the iptables chain the server's prefix is the last of the 10,000 RETURN rules.`,
    '',
    table(['policy', 'MB/s (median)', 'MB/s per round', 'vs no policy (median)', 'range over rounds'], rows),
    '',
    'Paths (first rep; server: `ip route get ADDR ipproto tcp`; 8.8.8.8, not excluded: a real SYN and the TX counter of the stand-in tunnel): ' +
      modes.map((m) => `${m}: ${paths.get(m) ?? '-'}`).join('; ') +
      '.',
    `iptables: ${Number.isFinite(iptPackets) ? iptPackets.toLocaleString('en-US') : '?'} packets of the first run walked the whole chain to the server's RETURN.`,
  ].join('\n');
}
