/**
 * Classifies `nft monitor` lines (nft(8) MONITOR) into changes of wgsplit's table. Pure.
 * Every object change in `inet wgsplit` matters (a rule or element deleted by hand, a chain
 * flushed, `nft flush ruleset`, which prints a delete per object), except elements of sets
 * someone else fills on purpose (dnsmasq's nftset): those come and go all the time and are
 * never drift. Continuation lines of a long element list and generation lines do not count.
 */
import type { KernelEvent } from './events.js';

const OURS = /^(add|delete|flush|replace|insert|create|destroy|reset) (table|chain|set|element|rule|map|counter|quota|limit|flowtable) inet wgsplit\b(?: (\S+))?/;

export function classifyNft(line: string, externalSets: ReadonlySet<string>): KernelEvent {
  const m = OURS.exec(line);
  if (!m) return { kind: 'other', deleted: false, summary: '', relevant: false };
  const [, verb, what, name] = m;
  if (what === 'element' && name && externalSets.has(name)) return { kind: 'other', deleted: false, summary: '', relevant: false };
  const deleted = verb === 'delete' || verb === 'flush' || verb === 'destroy';
  const object = what === 'table' ? 'table inet wgsplit' : `${what} ${name ?? ''}`.trim();
  return { kind: 'nft', deleted, summary: `nft ${object} ${deleted ? 'deleted' : 'changed'}${what === 'rule' && /handle \d+/.test(line) ? ` (${/handle \d+/.exec(line)![0]})` : ''}`, relevant: true };
}
