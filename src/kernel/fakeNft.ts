/**
 * wgsplit's nftables table in memory, for the fake kernel: the same per-object operations
 * the real one gets (plan/nftScript.ts), applied all-or-nothing like one `nft -f`
 * transaction, with the kernel's errors where wgsplit can meet them (a missing handle, set
 * or chain is ENOENT; a set or chain still in use cannot be deleted: EBUSY). Handles are
 * given out in increasing order, as nf_tables does per table.
 */
import { WgsplitError } from '../errors.js';
import { ruleComment, type NftChain, type NftSet } from '../model/nft.js';
import type { NftOp, ObservedNft, ObservedNftRule } from '../plan/nftDiff.js';

interface FakeRule extends ObservedNftRule {
  expr: string;
}

export class FakeNft {
  present = false;
  chains = new Map<string, NftChain>();
  sets = new Map<string, NftSet & { elementSet: Set<string> }>();
  rules: FakeRule[] = [];
  private handle = 1;

  /** Start from an observed table (kernel/nft.ts keeps its cache this way). */
  static from(o: ObservedNft): FakeNft {
    const f = new FakeNft();
    f.present = o.present;
    for (const c of o.chains) f.chains.set(c.name, { ...c });
    for (const x of o.sets) f.sets.set(x.name, { ...x, elements: [], elementSet: new Set(x.elements) });
    f.rules = o.rules.map((r) => ({ ...r, expr: '' }));
    f.handle = Math.max(0, ...o.rules.map((r) => r.handle)) + 1;
    return f;
  }

  observe(): ObservedNft {
    return {
      present: this.present,
      chains: [...this.chains.values()].map((c) => ({ ...c, owner: '' })),
      sets: [...this.sets.values()].map((s) => ({ name: s.name, type: s.type, flags: [...s.flags], timeout: s.timeout, elements: [...s.elementSet], owner: '' })),
      rules: this.rules.map(({ chain, handle, comment }) => (comment === undefined ? { chain, handle } : { chain, handle, comment })),
    };
  }

  /** Sorted text of the table (tests compare it). */
  dump(): string {
    if (!this.present) return '';
    const out: string[] = [];
    for (const c of [...this.chains.values()].sort((a, b) => a.name.localeCompare(b.name))) out.push(`chain ${c.name} ${c.type ?? ''} ${c.hook ?? ''} ${c.priority ?? ''}`.trimEnd());
    for (const s of [...this.sets.values()].sort((a, b) => a.name.localeCompare(b.name))) out.push(`set ${s.name} ${s.type} ${s.flags.join(',')} ${[...s.elementSet].sort().join(' ')}`.trimEnd());
    // Chain by chain (the order between chains means nothing), rules in their chain's order.
    for (const c of [...new Set(this.rules.map((r) => r.chain))].sort()) for (const r of this.rules.filter((x) => x.chain === c)) out.push(`rule ${r.chain} ${r.expr} comment "${r.comment ?? ''}"`);
    return out.join('\n') + '\n';
  }

  apply(ops: NftOp[]): void {
    const saved = this.snapshot();
    try {
      for (const o of order(ops)) this.one(o);
    } catch (e) {
      this.restore(saved);
      throw e;
    }
  }

  private one(o: NftOp): void {
    const fail = (m: string) => {
      throw new WgsplitError('KERNEL', `nft -f failed: ${m}`);
    };
    if (o.kind === 'nft-table') {
      if (o.op === 'add') this.present = true;
      else {
        if (!this.present) fail('No such file or directory');
        this.present = false;
        this.chains.clear();
        this.sets.clear();
        this.rules = [];
      }
      return;
    }
    if (!this.present) fail('No such file or directory (table inet wgsplit)');
    if (o.kind === 'nft-chain') {
      if (o.op !== 'add') {
        if (!this.chains.has(o.chain.name)) fail(`No such file or directory (chain ${o.chain.name})`);
        if (o.op === 'delete' && this.rules.some((r) => r.chain === o.chain.name)) fail(`Device or resource busy (chain ${o.chain.name})`);
        this.rules = this.rules.filter((r) => r.chain !== o.chain.name); // replace: flush
        this.chains.delete(o.chain.name);
      }
      if (o.op !== 'delete') this.chains.set(o.chain.name, { ...o.chain });
      return;
    }
    if (o.kind === 'nft-set') {
      if (o.op !== 'add') {
        if (!this.sets.has(o.set.name)) fail(`No such file or directory (set ${o.set.name})`);
        if (this.rules.some((r) => r.expr.includes(`@${o.set.name}`) && new RegExp(`@${o.set.name}\\b`).test(r.expr))) fail(`Device or resource busy (set ${o.set.name})`);
        this.sets.delete(o.set.name);
      }
      if (o.op !== 'delete') {
        const existing = this.sets.get(o.set.name);
        this.sets.set(o.set.name, { ...o.set, elements: [], elementSet: existing?.elementSet ?? new Set() });
      }
      return;
    }
    if (o.kind === 'nft-element') {
      const s = this.sets.get(o.set);
      if (!s) return fail(`No such file or directory (set ${o.set})`);
      if (o.op === 'add') s.elementSet.add(o.element);
      else if (!s.elementSet.delete(o.element)) fail(`No such file or directory (element ${o.element})`);
      return;
    }
    if (o.op === 'delete') {
      const i = this.rules.findIndex((r) => r.chain === o.chain && r.handle === o.handle);
      if (i < 0) fail(`No such file or directory (rule handle ${o.handle})`);
      this.rules.splice(i, 1);
      return;
    }
    if (!this.chains.has(o.rule.chain)) fail(`No such file or directory (chain ${o.rule.chain})`);
    for (const m of o.rule.expr.matchAll(/@([A-Za-z0-9_]+)/g)) if (!this.sets.has(m[1])) fail(`No such file or directory (set ${m[1]})`);
    const rule: FakeRule = { chain: o.rule.chain, handle: this.handle++, comment: ruleComment(o.rule), expr: o.rule.expr };
    if (o.before === undefined) {
      // append: after the last rule of the chain
      let at = this.rules.length;
      for (let i = this.rules.length - 1; i >= 0; i--) if (this.rules[i].chain === rule.chain) {
        at = i + 1;
        break;
      }
      this.rules.splice(at, 0, rule);
    } else {
      const i = this.rules.findIndex((r) => r.chain === o.rule.chain && r.handle === o.before);
      if (i < 0) fail(`No such file or directory (position ${o.before})`);
      this.rules.splice(i, 0, rule);
    }
  }

  private snapshot() {
    return {
      present: this.present,
      chains: new Map(this.chains),
      sets: new Map([...this.sets].map(([k, s]) => [k, { ...s, elementSet: new Set(s.elementSet) }])),
      rules: this.rules.map((r) => ({ ...r })),
      handle: this.handle,
    };
  }

  private restore(s: ReturnType<FakeNft['snapshot']>): void {
    this.present = s.present;
    this.chains = s.chains;
    this.sets = s.sets;
    this.rules = s.rules;
    this.handle = s.handle;
  }

  /** Someone else's hand: `nft flush ruleset`. */
  flushRuleset(): void {
    this.present = false;
    this.chains.clear();
    this.sets.clear();
    this.rules = [];
  }
}

/** The order plan/nftScript.ts writes a transaction in (the fake must see the same). */
function order(ops: NftOp[]): NftOp[] {
  const rank = (o: NftOp): number => {
    if (o.kind === 'nft-table') return o.op === 'add' ? 0 : 9;
    if (o.kind === 'nft-rule') return o.op === 'delete' ? 1 : 6;
    if (o.kind === 'nft-chain') return o.op === 'replace' ? 2 : o.op === 'add' ? 4 : 7;
    if (o.kind === 'nft-set') return o.op === 'replace' ? 3 : o.op === 'add' ? 3.5 : 8;
    return o.op === 'delete' ? 5 : 5.5;
  };
  return ops.map((o, i) => ({ o, i })).sort((a, b) => rank(a.o) - rank(b.o) || a.i - b.i).map((x) => x.o);
}
