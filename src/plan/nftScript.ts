/**
 * nft operations as the exact `nft -f` text that performs them, in one transaction (nft(8):
 * a script is applied atomically, no packet sees half of it). Pure: kernel/nft.ts runs it,
 * `apply --dry-run` and tests read it.
 *
 * Order inside the transaction: the table; rules to drop (by handle); chains and sets to
 * re-create (deleted once empty and unreferenced); new sets and chains; elements out, then
 * in; new rules, each inserted before the next kept rule or appended; last, what no profile
 * wants (rules, chains, sets, or the table).
 */
import { chainDeclaration, nftString, NFT_TABLE_REF, ruleComment, setDeclaration } from '../model/nft.js';
import type { NftOp } from './nftDiff.js';

const T = NFT_TABLE_REF;

/** tableTag: a comment for a table this transaction creates (kernel/nft.ts uses it to recognise its table). */
export function nftTransaction(ops: readonly NftOp[], opts: { tableTag?: string } = {}): string {
  const out: string[] = [];
  const by = <K extends NftOp['kind']>(kind: K, op?: string) => ops.filter((o): o is Extract<NftOp, { kind: K }> => o.kind === kind && (op === undefined || o.op === op));
  if (by('nft-table', 'add').length) out.push(`add table ${T}${opts.tableTag ? ` { comment ${nftString(opts.tableTag)}; }` : ''}`);
  for (const o of by('nft-rule', 'delete')) if (o.op === 'delete') out.push(`delete rule ${T} ${o.chain} handle ${o.handle}`);
  const replacedChains = by('nft-chain', 'replace');
  const replacedSets = by('nft-set', 'replace');
  for (const o of replacedChains) out.push(`flush chain ${T} ${o.chain.name}`, `delete chain ${T} ${o.chain.name}`);
  for (const o of replacedSets) out.push(`delete set ${T} ${o.set.name}`);
  for (const o of [...by('nft-set', 'add'), ...replacedSets]) out.push(`add set ${T} ${o.set.name} { ${setDeclaration(o.set)} }`);
  for (const o of [...by('nft-chain', 'add'), ...replacedChains]) {
    const d = chainDeclaration(o.chain);
    out.push(`add chain ${T} ${o.chain.name}${d ? ` { ${d} }` : ''}`);
  }
  for (const op of ['delete', 'add'] as const) {
    const perSet = new Map<string, string[]>();
    for (const o of by('nft-element', op)) (perSet.get(o.set) ?? perSet.set(o.set, []).get(o.set)!).push(o.element);
    // Chunks keep a line (and nft's parser buffers) small for 100k elements.
    for (const [set, els] of perSet) for (let i = 0; i < els.length; i += 4096) out.push(`${op} element ${T} ${set} { ${els.slice(i, i + 4096).join(', ')} }`);
  }
  for (const o of by('nft-rule', 'add')) {
    if (o.op !== 'add') continue;
    const where = o.before === undefined ? `add rule ${T} ${o.rule.chain}` : `insert rule ${T} ${o.rule.chain} position ${o.before}`;
    out.push(`${where} ${o.rule.expr} comment ${nftString(ruleComment(o.rule))}`);
  }
  for (const o of by('nft-chain', 'delete')) out.push(`delete chain ${T} ${o.chain.name}`);
  for (const o of by('nft-set', 'delete')) out.push(`delete set ${T} ${o.set.name}`);
  if (by('nft-table', 'delete').length) out.push(`delete table ${T}`);
  return out.length ? out.join('\n') + '\n' : '';
}
