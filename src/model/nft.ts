/**
 * nftables state as data: the objects wgsplit keeps in its own table, `inet wgsplit`. Pure.
 *
 * Every object has an identity wgsplit can find again in the kernel without remembering
 * anything across runs (never a handle): chains and sets by name, rules by the `key` stored
 * in their comment (NFTA_RULE_USERDATA) together with a short hash of their expression, so a
 * rule whose text changed is a different rule. Each object is owned by one profile or by
 * wgsplit itself ('wgsplit': the base chains every profile shares).
 *
 * compile produces an NftState per unit (fragments) and merges them; kernel/nftObserve.ts
 * reads the kernel's table into the same shape; plan/nftDiff.ts compares the two per
 * object; kernel/nft.ts applies the difference; kernel/fake.ts keeps one in memory.
 */
import { createHash } from 'node:crypto';
import { NFT_TABLE } from './constants.js';

/** Base chain hooks of the inet family (nft(8) ADDRESS FAMILIES, NF_INET_* numbers). */
export type NftHook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
export const HOOK_NUM: Record<NftHook, number> = { prerouting: 0, input: 1, forward: 2, output: 3, postrouting: 4 };

export interface NftChain {
  name: string;
  /** base chain: type, hook and priority (a number; nft(8) names: mangle -150, dstnat -100, filter 0, srcnat 100) */
  type?: 'filter' | 'route' | 'nat';
  hook?: NftHook;
  priority?: number;
  policy?: 'accept' | 'drop';
  owner: string;
}

export type NftKeyType = 'ipv4_addr' | 'ipv6_addr' | 'ifname' | 'inet_service' | 'mark';

export interface NftSet {
  name: string;
  type: NftKeyType;
  /** interval: prefixes/ranges (elements are prefixes); timeout: elements may carry a timeout */
  flags: ('interval' | 'timeout')[];
  /** default element timeout in seconds (flags timeout) */
  timeout?: number;
  /** canonical element text: prefixes `10.0.0.0/8`, addresses, names; sorted by compile */
  elements: string[];
  /**
   * Elements are filled by someone else on purpose (dnsmasq's nftset): reconcile creates the
   * set and never adds or removes its elements; diff never reports them.
   */
  external?: boolean;
  owner: string;
}

export interface NftRule {
  chain: string;
  /** stable identity, unique in the table: `<owner>/<what>`, e.g. `tcp-internet/v4/mark` */
  key: string;
  /** the rule's statements in nft syntax, without the comment */
  expr: string;
  owner: string;
}

/** Objects are listed in the order they must exist in (rules: chain order). */
export interface NftState {
  chains: NftChain[];
  sets: NftSet[];
  rules: NftRule[];
}

export const emptyNft = (): NftState => ({ chains: [], sets: [], rules: [] });

export function mergeNft(parts: NftState[]): NftState {
  const out = emptyNft();
  const chains = new Map<string, NftChain>();
  const sets = new Map<string, NftSet>();
  for (const p of parts) {
    for (const c of p.chains) if (!chains.has(c.name)) chains.set(c.name, c);
    for (const s of p.sets) if (!sets.has(s.name)) sets.set(s.name, s);
    out.rules.push(...p.rules);
  }
  out.chains = [...chains.values()];
  out.sets = [...sets.values()];
  return out;
}

export function isEmptyNft(s: NftState | undefined): boolean {
  return !s || (s.chains.length === 0 && s.sets.length === 0 && s.rules.length === 0);
}

/** Short hash of a rule's expression: part of its comment, so an edited rule is a new rule. */
export function ruleHash(expr: string): string {
  return createHash('sha256').update(expr).digest('hex').slice(0, 10);
}

/** The comment a rule carries in the kernel (at most 128 bytes: NFT_USERDATA_MAXLEN is 256, nft limits comments to 128). */
export function ruleComment(r: Pick<NftRule, 'key' | 'expr'>): string {
  return `${r.key} #${ruleHash(r.expr)}`;
}

/** Parse a comment written by ruleComment; undefined for a rule wgsplit did not write. */
export function parseRuleComment(comment: string | undefined): { key: string; hash: string } | undefined {
  const m = comment === undefined ? null : /^(.+) #([0-9a-f]{10})$/.exec(comment);
  return m ? { key: m[1], hash: m[2] } : undefined;
}

/** A chain's declaration as nft text (inside `chain NAME { ... }`), '' for a regular chain. */
export function chainDeclaration(c: NftChain): string {
  if (!c.type || !c.hook) return '';
  return `type ${c.type} hook ${c.hook} priority ${c.priority ?? 0}; policy ${c.policy ?? 'accept'};`;
}

export function sameChain(a: NftChain, b: NftChain): boolean {
  return chainDeclaration(a) === chainDeclaration(b);
}

export function setDeclaration(s: NftSet): string {
  const parts = [`type ${s.type};`];
  if (s.flags.length) parts.push(`flags ${[...s.flags].sort().join(',')};`);
  if (s.timeout !== undefined) parts.push(`timeout ${s.timeout}s;`);
  return parts.join(' ');
}

export function sameSet(a: NftSet, b: NftSet): boolean {
  return setDeclaration(a) === setDeclaration(b);
}

export const NFT_TABLE_REF = `inet ${NFT_TABLE}`;

/** Quote a string for an nft comment or name (nft strings cannot hold `"`). */
export function nftString(s: string): string {
  return `"${s.replace(/[^\x20-\x7e]|["\\]/g, '_')}"`;
}

/**
 * The base chains wgsplit's table may hold, shared by every profile (owner 'wgsplit'); a
 * chain exists while at least one rule uses it. Priorities are nft(8)'s named ones.
 *  - output:      type route hook output priority mangle. A mark set here makes the kernel
 *                 route the packet again (ip_route_me_harder): the host's own traffic.
 *  - prerouting:  type filter hook prerouting priority mangle. Forwarded traffic (gateway
 *                 mode) is marked before the routing decision; TPROXY lives here too (it is
 *                 only allowed in prerouting).
 *  - forward:     type filter hook forward priority mangle. TCP MSS clamping.
 *  - postrouting: type nat hook postrouting priority srcnat. Masquerade to the tunnel's address.
 */
export const BASE_CHAINS: Record<'output' | 'prerouting' | 'forward' | 'postrouting', NftChain> = {
  output: { name: 'output', type: 'route', hook: 'output', priority: -150, policy: 'accept', owner: 'wgsplit' },
  prerouting: { name: 'prerouting', type: 'filter', hook: 'prerouting', priority: -150, policy: 'accept', owner: 'wgsplit' },
  forward: { name: 'forward', type: 'filter', hook: 'forward', priority: -150, policy: 'accept', owner: 'wgsplit' },
  postrouting: { name: 'postrouting', type: 'nat', hook: 'postrouting', priority: 100, policy: 'accept', owner: 'wgsplit' },
};

/** Chain order in scripts and dumps: base chains in packet order, then the rest by name. */
const CHAIN_ORDER = ['prerouting', 'output', 'forward', 'postrouting'];
export function compareChains(a: NftChain, b: NftChain): number {
  const ia = CHAIN_ORDER.indexOf(a.name);
  const ib = CHAIN_ORDER.indexOf(b.name);
  return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.name.localeCompare(b.name);
}

/**
 * The whole table as one `nft -f` script that creates it from nothing (export --format
 * nft, tests). Applying it where the table exists adds to it; wgsplit itself applies only
 * differences (kernel/nft.ts).
 */
export function renderNftScript(state: NftState): string {
  const lines = [`table ${NFT_TABLE_REF} {`];
  for (const s of state.sets) {
    lines.push(`\tset ${s.name} {`, `\t\t${setDeclaration(s)}`);
    if (s.elements.length && !s.external) {
      lines.push('\t\telements = {');
      for (let i = 0; i < s.elements.length; i++) lines.push(`\t\t\t${s.elements[i]}${i < s.elements.length - 1 ? ',' : ''}`);
      lines.push('\t\t}');
    }
    lines.push('\t}');
  }
  for (const c of [...state.chains].sort(compareChains)) {
    lines.push(`\tchain ${c.name} {`);
    const decl = chainDeclaration(c);
    if (decl) lines.push(`\t\t${decl}`);
    for (const r of state.rules.filter((x) => x.chain === c.name)) lines.push(`\t\t${r.expr} comment ${nftString(ruleComment(r))}`);
    lines.push('\t}');
  }
  lines.push('}', '');
  return lines.join('\n');
}

/** Sorted, readable text of every object, for golden tests and the fake kernel's dump. */
export function dumpNft(state: NftState): string {
  const out: string[] = [];
  for (const c of [...state.chains].sort(compareChains)) out.push(`chain ${c.name} ${chainDeclaration(c)}`.trimEnd());
  for (const s of [...state.sets].sort((a, b) => a.name.localeCompare(b.name))) {
    out.push(`set ${s.name} ${setDeclaration(s)}${s.external ? ' (filled by others)' : ''}`);
    if (!s.external) for (const e of s.elements) out.push(`  element ${e}`);
  }
  for (const c of [...state.chains].sort(compareChains)) for (const r of state.rules.filter((x) => x.chain === c.name)) out.push(`rule ${c.name} [${r.key}] ${r.expr}`);
  return out.join('\n') + (out.length ? '\n' : '');
}

/**
 * A short digest of a whole wanted state (chains, sets with their elements, rules by key
 * and expression): two runs that want the same table give the same digest. The watcher
 * compares it to tell a repair (the same state put back) from a change of what is wanted.
 */
export function nftDigest(s: NftState | undefined): string {
  if (!s) return '-';
  const h = createHash('sha1');
  for (const c of s.chains) h.update(`c ${c.name} ${chainDeclaration(c)}\n`);
  for (const x of s.sets) {
    h.update(`s ${x.name} ${setDeclaration(x)} ${x.external ? 'external' : ''}\n`);
    if (!x.external) for (const e of x.elements) h.update(e).update(',');
  }
  for (const r of s.rules) h.update(`r ${r.chain} ${r.key} ${ruleHash(r.expr)}\n`);
  return h.digest('hex').slice(0, 16);
}
