/**
 * diff(desired nft objects, observed nft objects) -> operations, per object. Pure.
 *
 * Identity: chains and sets by name, rules by the key and expression hash in their comment
 * (model/nft.ts). The table itself is never deleted while some profile still uses it, so an
 * element learned by someone else (a set marked `external`) or a counter survives every
 * re-apply.
 *
 * Two groups, as the plan's phases need them (plan/diff.ts):
 *   put:  before the `ip rule`s that use the marks are added. Creates what is missing, swaps
 *         changed rules (the old one goes in the same transaction), adds and removes
 *         elements, drops foreign rules someone put into our chains.
 *   late: after the `ip rule`s are gone: rules, chains and sets no profile wants any more,
 *         or the whole table when nothing is wanted.
 * Rule order matters (the first profile to mark a packet wins): rules already in the kernel
 * in the wanted relative order are kept, anything out of order is deleted, and missing rules
 * are inserted before the next kept one (`insert rule ... position H`) or appended.
 */
import { parseRuleComment, ruleHash, sameChain, sameSet, type NftChain, type NftRule, type NftSet, type NftState } from '../model/nft.js';
import type { Op } from './plan.js';

export interface ObservedNftRule {
  chain: string;
  handle: number;
  comment?: string;
}

/** The kernel's `inet wgsplit` table as objects (kernel/nftObserve.ts, the fake). */
export interface ObservedNft {
  present: boolean;
  /** the table's comment: a tag wgsplit writes when it creates the table (kernel/nft.ts) */
  tag?: string;
  chains: NftChain[];
  /** elements as stored, canonical text (prefixes, or `a-b` for a range that is no prefix) */
  sets: NftSet[];
  /** in chain order */
  rules: ObservedNftRule[];
}

export type NftOp = Extract<Op, { kind: 'nft-table' | 'nft-chain' | 'nft-set' | 'nft-element' | 'nft-rule' }>;

/** The profile a rule key belongs to (keys start with the profile's nft identifier). */
function ownerOfKey(key: string | undefined, want: NftState | undefined): string | undefined {
  if (!key) return undefined;
  const head = key.split('/')[0];
  return want?.rules.find((r) => r.key.split('/')[0] === head)?.owner ?? head;
}

export function diffNft(want: NftState | undefined, have: ObservedNft | undefined): { put: NftOp[]; late: NftOp[] } {
  const put: NftOp[] = [];
  const late: NftOp[] = [];
  if (!have) return { put, late };
  if (!want) {
    if (have.present) late.push({ op: 'delete', kind: 'nft-table' });
    return { put, late };
  }
  const h: ObservedNft = have.present ? have : { present: false, chains: [], sets: [], rules: [] };
  if (!have.present) put.push({ op: 'add', kind: 'nft-table' });

  // Sets first: a set whose declaration changed is deleted and created again, and every rule
  // (which may reference it) goes with it and comes back.
  const haveSets = new Map(h.sets.map((s) => [s.name, s]));
  let flushAll = false;
  for (const s of want.sets) {
    const o = haveSets.get(s.name);
    if (!o) {
      put.push({ op: 'add', kind: 'nft-set', set: s, profile: s.owner });
      if (!s.external) for (const e of s.elements) put.push({ op: 'add', kind: 'nft-element', set: s.name, element: e, interval: s.flags.includes('interval'), profile: s.owner });
      continue;
    }
    if (!sameSet(s, o)) {
      flushAll = true;
      put.push({ op: 'replace', kind: 'nft-set', set: s, was: o, profile: s.owner });
      if (!s.external) for (const e of s.elements) put.push({ op: 'add', kind: 'nft-element', set: s.name, element: e, interval: s.flags.includes('interval'), profile: s.owner });
      continue;
    }
    if (s.external) continue;
    // The kernel lists an interval set's elements sorted, as compile writes them: equal lists
    // compare in one pass (100k elements: two Sets of 100k strings were ~100 ms of a no-op).
    if (sameList(o.elements, s.elements)) continue;
    const haveE = new Set(o.elements);
    const wantE = new Set(s.elements);
    for (const e of o.elements) if (!wantE.has(e)) put.push({ op: 'delete', kind: 'nft-element', set: s.name, element: e, interval: s.flags.includes('interval'), profile: s.owner });
    for (const e of s.elements) if (!haveE.has(e)) put.push({ op: 'add', kind: 'nft-element', set: s.name, element: e, interval: s.flags.includes('interval'), profile: s.owner });
  }

  const haveChains = new Map(h.chains.map((c) => [c.name, c]));
  const flushed = new Set<string>();
  for (const c of want.chains) {
    const o = haveChains.get(c.name);
    if (!o) put.push({ op: 'add', kind: 'nft-chain', chain: c, profile: c.owner });
    else if (!sameChain(c, o)) {
      flushed.add(c.name);
      put.push({ op: 'replace', kind: 'nft-chain', chain: c, was: o, profile: c.owner });
    }
  }

  const wantKeys = new Set(want.rules.map((r) => r.key));
  const wantChains = new Set(want.chains.map((c) => c.name));
  const ruleDeletesPut: NftOp[] = [];
  const ruleAdds: NftOp[] = [];
  for (const c of want.chains) {
    const desired = want.rules.filter((r) => r.chain === c.name);
    const observed = h.rules.filter((r) => r.chain === c.name);
    const flush = flushAll || flushed.has(c.name);
    const index = new Map(desired.map((r, i) => [`${r.key} ${hashOf(r)}`, i]));
    const keptAt = new Map<number, number>(); // desired index -> handle
    let last = -1;
    for (const o of observed) {
      const id = parseRuleComment(o.comment);
      const i = id && !flush ? index.get(`${id.key} ${id.hash}`) : undefined;
      if (i !== undefined && i > last) {
        keptAt.set(i, o.handle);
        last = i;
        continue;
      }
      const del: NftOp = { op: 'delete', kind: 'nft-rule', chain: c.name, handle: o.handle, comment: o.comment, profile: ownerOfKey(id?.key, want) };
      // A profile that is gone loses its rules after its `ip rule`s; an edited, misplaced or
      // foreign rule is dealt with at once.
      if (id && !wantKeys.has(id.key) && !flush) late.push(del);
      else ruleDeletesPut.push(del);
    }
    desired.forEach((r, i) => {
      if (keptAt.has(i)) return;
      let before: number | undefined;
      for (let j = i + 1; j < desired.length; j++) if (keptAt.has(j)) {
        before = keptAt.get(j);
        break;
      }
      ruleAdds.push({ op: 'add', kind: 'nft-rule', rule: r, before, profile: r.owner });
    });
  }
  // Chains no profile wants: their rules, then the chain (late).
  for (const o of h.chains) {
    if (wantChains.has(o.name)) continue;
    for (const r of h.rules.filter((x) => x.chain === o.name)) {
      const id = parseRuleComment(r.comment);
      late.push({ op: 'delete', kind: 'nft-rule', chain: o.name, handle: r.handle, comment: r.comment, profile: ownerOfKey(id?.key, want) });
    }
    late.push({ op: 'delete', kind: 'nft-chain', chain: o });
  }
  const wantSets = new Set(want.sets.map((s) => s.name));
  for (const o of h.sets) if (!wantSets.has(o.name)) late.push({ op: 'delete', kind: 'nft-set', set: o, profile: ownerOfKey(o.name.replace(/_v[46]_.*$/, ''), want) });
  put.push(...ruleDeletesPut, ...ruleAdds);
  return { put, late };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const hashCache = new WeakMap<NftRule, string>();
function hashOf(r: NftRule): string {
  let v = hashCache.get(r);
  if (v === undefined) hashCache.set(r, (v = ruleHash(r.expr)));
  return v;
}

/** Counts for status: how many objects of each kind a state holds. */
export function nftCounts(s: NftState | ObservedNft | undefined): { chains: number; sets: number; rules: number; elements: number } {
  if (!s) return { chains: 0, sets: 0, rules: 0, elements: 0 };
  return { chains: s.chains.length, sets: s.sets.length, rules: s.rules.length, elements: s.sets.reduce((n, x) => n + x.elements.length, 0) };
}
