/**
 * A policy routing rule as plain data, exactly the fields the kernel compares when it
 * decides two rules are the same (fib_rules.c rule_exists / rule_find), so a desired rule
 * and one read back from the kernel compare by `ruleKey`.
 */
import type { Family } from './prefix.js';

export interface Range {
  start: number;
  end: number;
}

export interface RuleSpec {
  family: Family;
  priority: number;
  table: number;
  protocol: number; // rtnetlink FRA_PROTOCOL: our tag
  src?: string; // canonical prefix text, e.g. 0.0.0.0/32
  dst?: string;
  iif?: string;
  oif?: string;
  ipproto?: number;
  sport?: Range;
  dport?: Range;
  uid?: Range;
  fwmark?: number;
  fwmask?: number;
  invert?: boolean;
  /**
   * FIB_RULE_FIND_SADDR: for a lookup with no source yet, the kernel picks the source from
   * this rule's table and matches `src` against it. iproute2 can neither set nor show it.
   */
  findSaddr?: boolean;
}

export const rangeText = (r: Range) => (r.start === r.end ? `${r.start}` : `${r.start}-${r.end}`);

export function ruleKey(r: RuleSpec): string {
  return [
    r.family,
    r.priority,
    r.table,
    r.protocol,
    r.src ?? '',
    r.dst ?? '',
    r.iif ?? '',
    r.oif ?? '',
    r.ipproto ?? '',
    r.sport ? rangeText(r.sport) : '',
    r.dport ? rangeText(r.dport) : '',
    r.uid ? rangeText(r.uid) : '',
    r.fwmark ?? '',
    r.fwmask ?? '',
    r.invert ? 'not' : '',
    r.findSaddr ? 'findsaddr' : '',
  ].join('|');
}

const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'ipv6-icmp' };

/** The selectors in `ip rule` syntax, e.g. `from 0.0.0.0/32 iif lo ipproto tcp`. */
export function ruleSelectorText(r: RuleSpec): string {
  const parts: string[] = [];
  if (r.invert) parts.push('not');
  parts.push(`from ${r.src ?? 'all'}`);
  if (r.dst) parts.push(`to ${r.dst}`);
  if (r.fwmark !== undefined) parts.push(`fwmark 0x${r.fwmark.toString(16)}${r.fwmask !== undefined ? '/0x' + r.fwmask.toString(16) : ''}`);
  if (r.iif) parts.push(`iif ${r.iif}`);
  if (r.oif) parts.push(`oif ${r.oif}`);
  if (r.uid) parts.push(`uidrange ${r.uid.start}-${r.uid.end}`);
  if (r.ipproto !== undefined) parts.push(`ipproto ${PROTO_NAMES[r.ipproto] ?? r.ipproto}`);
  if (r.sport) parts.push(`sport ${rangeText(r.sport)}`);
  if (r.dport) parts.push(`dport ${rangeText(r.dport)}`);
  return parts.join(' ');
}
