/**
 * Plans as text: the +/- view a person reads (diff, apply --dry-run), and the same
 * operations as `ip -batch` lines. Pure; colour is decided by the caller.
 */
import { PROTOCOL_NAME, ROUTE_METRIC } from '../model/constants.js';
import type { RouteSpec } from '../model/route.js';
import { ruleSelectorText, type RuleSpec } from '../model/rule.js';
import { expandOps, isNftOp, opFamily, opSize, opTable, type Op, type Plan } from './plan.js';
import { throwRoute } from '../model/throwSet.js';
import { chainDeclaration, parseRuleComment, setDeclaration } from '../model/nft.js';

export function routeText(r: RouteSpec): string {
  const dst = r.dst === '0.0.0.0/0' || r.dst === '::/0' ? 'default' : r.dst;
  const parts: string[] = [];
  if (r.type !== 'unicast') parts.push(r.type);
  parts.push(dst);
  if (r.dev) parts.push(`dev ${r.dev}`);
  if (r.src) parts.push(`src ${r.src}`);
  parts.push(`table ${r.table}`);
  if (r.metric !== ROUTE_METRIC[r.family]) parts.push(`metric ${r.metric}`);
  parts.push(`proto ${r.protocol === 87 ? PROTOCOL_NAME : r.protocol}`);
  return parts.join(' ');
}

export function ruleText(r: RuleSpec): string {
  return `pref ${r.priority} ${ruleSelectorText(r)} lookup ${r.table} proto ${r.protocol === 87 ? PROTOCOL_NAME : r.protocol}${r.findSaddr ? ' [find-saddr]' : ''}`;
}

export function opText(o: Op): string {
  if (o.kind === 'rule') return `rule ${ruleText(o.rule)}`;
  if (o.kind === 'sysctl') return `sysctl ${o.path.replace(/\//g, '.')} = ${o.value}${o.was !== undefined ? ` (was ${o.was})` : ''}${o.op === 'delete' ? ' (restored)' : ''}`;
  if (o.kind === 'nft-table') return 'nft table inet wgsplit';
  if (o.kind === 'nft-chain') {
    const d = chainDeclaration(o.chain);
    return `nft chain ${o.chain.name}${d ? ` { ${d} }` : ''}${o.was ? `   (was: ${chainDeclaration(o.was) || 'a regular chain'})` : ''}`;
  }
  if (o.kind === 'nft-set') return `nft set ${o.set.name} { ${setDeclaration(o.set)} }${o.was ? `   (was: ${setDeclaration(o.was)})` : ''}${o.set.external ? ' (elements filled by others)' : ''}`;
  if (o.kind === 'nft-element') return `element ${o.element} (set ${o.set})`;
  if (o.kind === 'nft-rule') {
    if (o.op === 'add') return `nft rule ${o.rule.chain} ${o.rule.expr} [${o.rule.key}]`;
    const id = parseRuleComment(o.comment);
    return `nft rule ${o.chain} handle ${o.handle} ${id ? `[${id.key}]` : o.comment !== undefined ? `(comment "${o.comment}", not wgsplit's)` : '(no comment: not written by wgsplit)'}`;
  }
  if (o.kind === 'throws') return `${o.set.dsts.size} throw route${o.set.dsts.size === 1 ? '' : 's'} (table ${o.set.table})`;
  return `route ${routeText(o.route)}`;
}

const SIGN: Record<Op['op'], string> = { add: '+', replace: '~', delete: '-' };
const COLOUR: Record<Op['op'], string> = { add: '\x1b[32m', replace: '\x1b[33m', delete: '\x1b[31m' };

export interface RenderOptions {
  colour?: boolean;
  /** print every route even in large groups (default: summarise runs of throw routes) */
  full?: boolean;
  /** after this many throw routes of one kind in a group, print a count instead */
  summariseAfter?: number;
}

/** Grouped by profile and family, one +/-/~ line per rule or route. */
export function renderPlan(plan: Plan, opts: RenderOptions = {}): string {
  if (plan.ops.length === 0) return '';
  const groups = new Map<string, Op[]>();
  for (const o of plan.ops) {
    const fam = opFamily(o);
    const table = opTable(o);
    const head = isNftOp(o)
      ? `${o.profile && o.profile !== 'wgsplit' ? `profile ${o.profile}` : 'wgsplit'}, nftables:`
      : o.kind === 'sysctl'
        ? 'sysctl:'
        : `${o.profile ? `profile ${o.profile}` : `no profile (table ${table})`}, IPv${fam}:`;
    (groups.get(head) ?? groups.set(head, []).get(head)!).push(o);
  }
  const limit = opts.full ? Infinity : opts.summariseAfter ?? 10;
  const lines: string[] = [];
  for (const [head, ops] of groups) {
    lines.push(head);
    const throwCount = new Map<string, number>();
    const hidden = new Map<string, number>();
    for (const x of ops) {
      // A set of throws is listed route by route, as far as the limit goes (no object per
      // route beyond it: a 100k set is one op).
      if (x.kind === 'throws') {
        const k = `${x.op} throw route`;
        const seen = throwCount.get(k) ?? 0;
        const listed = Math.max(0, Math.min(x.set.dsts.size, limit - seen));
        for (let i = 0; i < listed; i++) {
          const line = `  ${SIGN[x.op]} route ${routeText(throwRoute(x.set, i))}`;
          lines.push(opts.colour ? `${COLOUR[x.op]}${line}\x1b[0m` : line);
        }
        throwCount.set(k, seen + x.set.dsts.size);
        if (x.set.dsts.size > listed) hidden.set(k, (hidden.get(k) ?? 0) + x.set.dsts.size - listed);
        continue;
      }
      const o = x;
      // Long runs of throw routes and set elements are counted, not listed.
      const bulk = o.kind === 'route' && o.route.type === 'throw' ? 'throw route' : o.kind === 'nft-element' ? 'set element' : undefined;
      if (bulk) {
        const k = `${o.op} ${bulk}`;
        const n = (throwCount.get(k) ?? 0) + 1;
        throwCount.set(k, n);
        if (n > limit) {
          hidden.set(k, (hidden.get(k) ?? 0) + 1);
          continue;
        }
      }
      let line = `  ${SIGN[o.op]} ${opText(o)}`;
      if (o.op === 'replace' && o.kind === 'route' && o.was) line += `   (was: ${routeText(o.was)})`;
      lines.push(opts.colour ? `${COLOUR[o.op]}${line}\x1b[0m` : line);
    }
    for (const [k, n] of hidden) {
      const [op, ...what] = k.split(' ');
      const line = `  ${SIGN[op as Op['op']]} ... and ${n} more ${what.join(' ')}${n > 1 ? 's' : ''} (--full to list)`;
      lines.push(opts.colour ? `${COLOUR[op as Op['op']]}${line}\x1b[0m` : line);
    }
  }
  return lines.join('\n') + '\n';
}

export function summary(plan: Plan): { add: number; replace: number; delete: number } {
  const s = { add: 0, replace: 0, delete: 0 };
  for (const o of plan.ops) s[o.op] += opSize(o);
  return s;
}

/**
 * One `ip -batch` line per operation. Batch lines take no options (ip(8)): routes get their
 * family from the destination, but `ip rule` does not take it from `from`/`to`, so IPv6
 * rules only work in a separate `ip -6 -batch` (see export).
 */
export function ipBatchLine(o: Op): string {
  if (isNftOp(o)) return `# nft: ${opText(o)} (see export --format nft)`;
  if (o.kind === 'sysctl') return `# sysctl -w ${o.path.replace(/\//g, '.')}=${o.value}`;
  if (o.kind === 'rule') {
    const r = o.rule;
    const verb = o.op === 'delete' ? 'del' : 'add';
    return `rule ${verb} pref ${r.priority} ${ruleSelectorText(r)} lookup ${r.table} proto ${r.protocol}`;
  }
  if (o.kind === 'throws') return expandOps([o]).map(ipBatchLine).join('\n');
  const r = o.route;
  const verb = o.op === 'delete' ? 'del' : o.op === 'replace' ? 'replace' : 'add';
  const parts = [`route ${verb}`];
  if (r.type !== 'unicast') parts.push(r.type);
  parts.push(r.dst);
  if (r.dev) parts.push(`dev ${r.dev}`);
  if (r.src) parts.push(`src ${r.src}`);
  parts.push(`table ${r.table} metric ${r.metric} proto ${r.protocol}`);
  return parts.join(' ');
}
