/**
 * End to end in fwmark mode (`mode = "fwmark"`): the same path scenarios as rule mode
 * (test/helpers/pathScenarios.ts), plus what only this backend has: the `inet wgsplit` nft
 * table (restored by `apply` after someone deletes it or flushes the whole ruleset, and
 * gone after `down` so `nft list ruleset` is byte for byte what it was), and reverse-path
 * filtering. The whole run is under strict rp_filter (net.ipv4.conf.all and the tunnel
 * interface at 1, as on a hardened host): replies of marked connections arrive on the
 * tunnel unmarked and would be dropped, so wgsplit must loosen the tunnel interface to 2
 * and put the 1 back on down. Needs root.
 */
import test from 'ava';
import { ADDR, PORT, type Sandbox } from '../helpers/sandbox.js';
import { NFT, definePathTests, rpFilter } from '../helpers/pathScenarios.js';

// Own prefix and interface name (wireguard-go's control sockets are machine-wide).
const WG = 'wgef0';

async function sh(sb: Sandbox, script: string, ...args: string[]) {
  const r = await sb.exec('host', ['sh', '-c', script, 'sh', ...args]);
  if (r.exitCode !== 0) throw new Error(`${script}: exit ${r.exitCode}: ${r.stderr}`);
  return r;
}

definePathTests({
  mode: 'fwmark',
  prefix: 'wgef',
  wg: WG,
  modeLine: 'mode = "fwmark"',
  async prepare(sb) {
    await sh(sb, 'echo 1 >/proc/sys/net/ipv4/conf/all/rp_filter && echo 1 >/proc/sys/net/ipv4/conf/"$1"/rp_filter', WG);
  },
  more(ctx) {
    test.serial('[fwmark] strict rp_filter: up loosened the tunnel interface to 2 and left `all` alone; undoing it breaks the path and diff/apply see and repair it', async (t) => {
      const { sb, wgsplit, dir } = ctx;
      t.is(ctx.base.rpFilter, `all=1 ${WG}=1`, 'the baseline is strict');
      t.is(await rpFilter(sb), `all=1 ${WG}=2`);
      // Put the strict value back behind wgsplit's back: the replies are dropped again...
      await sh(sb, 'echo 1 >/proc/sys/net/ipv4/conf/"$1"/rp_filter', WG);
      t.regex(await sb.probe('host', 'tcp', ADDR.internet, PORT.http, { timeoutMs: 1000 }), /^ERR /, 'strict rp_filter on the tunnel must drop the replies');
      // ...diff says so, apply fixes it.
      const d = await wgsplit(dir, ['diff']);
      t.is(d.exitCode, 1, d.stdout + d.stderr);
      t.regex(d.stdout, new RegExp(`net\\.ipv4\\.conf\\.${WG}\\.rp_filter = 2`));
      const a = await wgsplit(dir, ['apply']);
      t.is(a.exitCode, 0, a.stderr);
      t.is(await rpFilter(sb), `all=1 ${WG}=2`);
      t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.http), ADDR.vpnPublic);
      t.is((await wgsplit(dir, ['diff'])).exitCode, 0);
    });

    test.serial('[fwmark] diff exits 1 after `nft delete table inet wgsplit` (nothing is marked any more), 0 after apply', async (t) => {
      const { sb, wgsplit, dir } = ctx;
      t.is((await sb.exec('host', [NFT, 'delete', 'table', 'inet', 'wgsplit'])).exitCode, 0);
      // The rule and table T are still there, but nothing marks: TCP leaves directly.
      t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.http), ADDR.routerWan);
      const d = await wgsplit(dir, ['diff']);
      t.is(d.exitCode, 1, d.stdout + d.stderr);
      t.regex(d.stdout, /nft table inet wgsplit/);
      const a = await wgsplit(dir, ['apply']);
      t.is(a.exitCode, 0, a.stderr);
      const again = await wgsplit(dir, ['diff']);
      t.is(again.exitCode, 0, again.stdout);
      t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.http), ADDR.vpnPublic);
      t.is(await sb.probe('host', 'tcp', ADDR.internet6, PORT.https), ADDR.vpnPublic6);
    });

    test.serial('[fwmark] diff exits 1 after `nft flush ruleset`, 0 after apply; the paths come back', async (t) => {
      const { sb, wgsplit, dir } = ctx;
      t.is((await sb.exec('host', [NFT, 'flush', 'ruleset'])).exitCode, 0);
      const d = await wgsplit(dir, ['diff']);
      t.is(d.exitCode, 1, d.stdout + d.stderr);
      t.regex(d.stdout, /nft table inet wgsplit/);
      // The flush also took the sandbox's own docker masquerade table: put it back as it
      // was before `up` (the baseline ruleset is that table alone).
      t.notRegex(ctx.base.nft, /wgsplit/);
      await sh(sb, `printf '%s' "$1" | ${NFT} -f -`, ctx.base.nft);
      const a = await wgsplit(dir, ['apply']);
      t.is(a.exitCode, 0, a.stderr);
      t.is((await wgsplit(dir, ['diff'])).exitCode, 0);
      const [h4, h6, ctr] = await Promise.all([
        sb.probe('host', 'tcp', ADDR.internet, PORT.http),
        sb.probe('host', 'tcp', ADDR.internet6, PORT.http),
        sb.probe('ctr', 'tcp', ADDR.internet, PORT.http),
      ]);
      t.is(h4, ADDR.vpnPublic);
      t.is(h6, ADDR.vpnPublic6);
      t.is(ctr, ADDR.routerWan);
      // Only ours was re-created; nothing of wgsplit's is in another table.
      const tables = (await sb.exec('host', [NFT, 'list', 'tables'])).stdout.trim().split('\n').sort();
      t.deepEqual(tables, ['table inet wgsplit', 'table ip sandbox_docker']);
    });
  },
});
