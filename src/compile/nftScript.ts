/**
 * fwmark mode as one nftables table, `inet wgsplit`, rendered as an `nft -f` script that
 * replaces the whole table in one transaction (nft(8): a script is applied atomically, so
 * no packet ever sees half a ruleset). Pure.
 *
 *   route-type output chain (nft(8): a mark change there makes the kernel re-route the
 *   packet, ip_route_me_harder): packets this host originates, in the original direction
 *   of their connection (replies of local servers are the reply direction and stay
 *   untouched), matching protocol / ports / uid, to an included destination that is not
 *   excluded (interval sets), not yet marked by an earlier profile -> mark. Then
 *   `ip rule fwmark M/mask lookup T` sends them to T (`default dev wg0`).
 *   nat postrouting: what leaves the interface with our mark was routed with the uplink's
 *   source address; masquerade rewrites it to the interface's address.
 */
import { createHash } from 'node:crypto';
import { NFT_TABLE } from '../model/constants.js';
import { formatPrefix, type Family, type Prefix } from '../model/prefix.js';
import type { Range } from '../model/rule.js';
import type { Protocol } from '../profile/types.js';

export interface NftFragment {
  profile: string;
  family: Family;
  priority: number;
  iface: string;
  mark: number;
  mask: number;
  protocols?: Protocol[];
  dports: Range[];
  sports: Range[];
  uids: Range[];
  include: Prefix[];
  exclude: Prefix[];
}

export interface NftDesired {
  script: string; // the full `nft -f` script, including the delete of the old table
  hash: string; // short hash of the table body, kept in the table's comment
  elements: number;
}

const hex = (n: number) => '0x' + (n >>> 0).toString(16).padStart(8, '0');
/**
 * A profile name as part of an nft identifier. Profile names are file names, so anything
 * goes: nft identifiers must start with a letter (`10-office` is a syntax error) and two
 * sets of one name in a script are merged, not refused (`office-a` and `office_a` would
 * share their prefix sets); names are at most 256 bytes. A plain short name is used as is;
 * any other is shortened and gets a hash of itself.
 */
const ident = (s: string) =>
  /^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(s) ? s : `p_${s.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 64)}_${createHash('sha256').update(s).digest('hex').slice(0, 8)}`;
/** A profile name inside a quoted nft comment (at most 128 characters, no quotes). */
const commentName = (s: string) => s.replace(/[^\x20-\x7e]|["\\]/g, '_').slice(0, 100);
const rangeText = (r: Range) => (r.start === r.end ? `${r.start}` : `${r.start}-${r.end}`);
const l4: Record<Protocol, Record<Family, string>> = { tcp: { 4: 'tcp', 6: 'tcp' }, udp: { 4: 'udp', 6: 'udp' }, icmp: { 4: 'icmp', 6: 'ipv6-icmp' } };

function setBlock(name: string, family: Family, prefixes: Prefix[]): string[] {
  const type = family === 4 ? 'ipv4_addr' : 'ipv6_addr';
  const lines = [`\tset ${name} {`, `\t\ttype ${type}`, '\t\tflags interval'];
  if (prefixes.length) {
    // Elements one per line keeps a 100k-element script streamable and diffable.
    lines.push('\t\telements = {');
    for (let i = 0; i < prefixes.length; i++) lines.push(`\t\t\t${formatPrefix(prefixes[i])}${i < prefixes.length - 1 ? ',' : ''}`);
    lines.push('\t\t}');
  }
  lines.push('\t}');
  return lines;
}

export function renderNft(fragments: NftFragment[]): NftDesired | undefined {
  if (fragments.length === 0) return undefined;
  const frs = [...fragments].sort((a, b) => a.priority - b.priority || a.family - b.family);
  const body: string[] = [];
  const mark: string[] = [];
  const nat: string[] = [];
  let elements = 0;
  for (const f of frs) {
    const base = `${ident(f.profile)}_${f.family === 4 ? 'v4' : 'v6'}`;
    const ip = f.family === 4 ? 'ip' : 'ip6';
    body.push(...setBlock(`${base}_include`, f.family, f.include), ...setBlock(`${base}_exclude`, f.family, f.exclude));
    elements += f.include.length + f.exclude.length;
    const m: string[] = [`meta nfproto ${f.family === 4 ? 'ipv4' : 'ipv6'}`, `meta mark & ${hex(f.mask)} == 0`, 'ct direction original'];
    if (f.protocols) m.push(`meta l4proto { ${f.protocols.map((p) => l4[p][f.family]).join(', ')} }`);
    if (f.dports.length) m.push(`th dport { ${f.dports.map(rangeText).join(', ')} }`);
    if (f.sports.length) m.push(`th sport { ${f.sports.map(rangeText).join(', ')} }`);
    if (f.uids.length) m.push(`meta skuid { ${f.uids.map(rangeText).join(', ')} }`);
    m.push(`${ip} daddr @${base}_include`, `${ip} daddr != @${base}_exclude`);
    m.push(`meta mark set meta mark & ${hex(~f.mask)} | ${hex(f.mark)}`, `comment "profile ${commentName(f.profile)}"`);
    mark.push(`\t\t${m.join(' ')}`);
    nat.push(`\t\tmeta nfproto ${f.family === 4 ? 'ipv4' : 'ipv6'} oifname "${f.iface}" meta mark & ${hex(f.mask)} == ${hex(f.mark)} masquerade comment "profile ${commentName(f.profile)}"`);
  }
  body.push(
    '\tchain divert {',
    '\t\ttype route hook output priority mangle; policy accept;',
    ...mark,
    '\t}',
    '\tchain masq {',
    '\t\ttype nat hook postrouting priority srcnat; policy accept;',
    ...nat,
    '\t}',
  );
  const text = body.join('\n');
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 16);
  // `table ... {}` then `delete table`: deleting a table that does not exist is an error,
  // creating an empty one first makes the script work either way, still in one transaction.
  const script = [`table inet ${NFT_TABLE} {}`, `delete table inet ${NFT_TABLE}`, `table inet ${NFT_TABLE} {`, `\tcomment "wgsplit ${hash}"`, text, '}', ''].join('\n');
  return { script, hash, elements };
}
