/**
 * Typed rtnetlink through the `netlink` package (0.3.0): rules, links, addresses and route
 * lookups (routes themselves go over rawRoutes.ts), translated to and from the plain model.
 * Sharp edges handled here
 * (DESIGN.md, measured on these machines):
 * - `options.flags` must be a number; an object is silently dropped.
 * - tables above 255 go in the TABLE attribute; the header byte reads back 252 (COMPAT).
 * - dumps are not filtered by the kernel: callers filter on table / protocol themselves.
 * - errors are only text ("Request rejected: EEXIST"): errnoOf() extracts the name.
 * - one dump at a time per socket: this socket is for requests only, never events.
 */
import netlink from 'netlink';
import { WgsplitError } from '../errors.js';
import { formatAddress, type Family } from '../model/prefix.js';
import type { Range, RuleSpec } from '../model/rule.js';
import { addressBytes, type LookupQuery, type LookupResult } from './lookup.js';

const { createRtNetlink, FlagsNew } = netlink;
type RtSocket = ReturnType<typeof createRtNetlink>;

const AF: Record<Family, number> = { 4: 2, 6: 10 };
const FAMILY_OF: Record<number, Family> = { 2: 4, 10: 6 };

export interface LinkInfo {
  index: number;
  name: string;
  up: boolean;
}

export interface AddressInfo {
  index: number;
  family: Family;
  address: string;
  prefixlen: number;
  /** IFA_CACHEINFO cstamp: when the address was created, in 1/100 s since boot */
  cstamp?: number;
}


export function errnoOf(e: unknown): string | undefined {
  const m = /\b(E[A-Z]+)\b/.exec(String((e as Error)?.message ?? e));
  return m?.[1];
}


function bufAddr(family: Family, b: Buffer): string {
  let v = 0n;
  for (const byte of b) v = (v << 8n) | BigInt(byte);
  return formatAddress(family, v);
}

function splitPrefix(p: string): [string, number] {
  const [a, l] = p.split('/');
  return [a, Number(l)];
}

export class Rtnl {
  private readonly s: RtSocket;
  private linkCache?: LinkInfo[];

  constructor() {
    // SO_RCVBUF generous: a dump of 100k routes arrives in bursts.
    this.s = createRtNetlink({ recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 } as never);
  }

  close(): void {
    this.s.socket.close();
  }

  async links(refresh = false): Promise<LinkInfo[]> {
    if (this.linkCache && !refresh) return this.linkCache;
    const msgs = await this.s.getLinks();
    this.linkCache = msgs.map((m) => ({ index: m.data.index ?? 0, name: m.attrs.ifname ?? '', up: !!m.data.flags?.up }));
    return this.linkCache;
  }

  async addresses(): Promise<AddressInfo[]> {
    const msgs = await this.s.getAddresses();
    const out: AddressInfo[] = [];
    for (const m of msgs) {
      const family = FAMILY_OF[m.data.family ?? 0];
      const buf = m.attrs.local ?? m.attrs.address;
      if (!family || !buf) continue;
      out.push({ index: m.data.index ?? 0, family, address: bufAddr(family, buf), prefixlen: m.data.prefixlen ?? 0, cstamp: m.attrs.cacheInfo?.cstamp });
    }
    return out;
  }

  async rules(family: Family): Promise<RuleSpec[]> {
    const msgs = await this.s.getRules({ family: AF[family] });
    const out: RuleSpec[] = [];
    for (const m of msgs) {
      if (FAMILY_OF[m.data.family ?? 0] !== family) continue;
      const a = m.attrs;
      const action = m.data.action as unknown;
      if (action !== 'toTbl' && action !== 1) continue; // we only make `lookup` rules
      const r: RuleSpec = {
        family,
        priority: a.priority ?? 0,
        table: a.table ?? m.data.table ?? 0,
        protocol: a.protocol ?? 0,
      };
      if (a.src && m.data.srcLen !== undefined) r.src = `${bufAddr(family, a.src)}/${m.data.srcLen}`;
      if (a.dst && m.data.dstLen !== undefined) r.dst = `${bufAddr(family, a.dst)}/${m.data.dstLen}`;
      if (a.iifname) r.iif = a.iifname;
      if (a.oifname) r.oif = a.oifname;
      if (a.ipProto !== undefined) r.ipproto = a.ipProto;
      if (a.sportRange) r.sport = range(a.sportRange);
      if (a.dportRange) r.dport = range(a.dportRange);
      if (a.uidRange) r.uid = range(a.uidRange);
      if (a.fwmark !== undefined && a.fwmark !== 0) r.fwmark = a.fwmark;
      if (a.fwmask !== undefined && r.fwmark !== undefined) r.fwmask = a.fwmask;
      if (m.data.flags?.invert) r.invert = true;
      if (m.data.flags?.findSaddr) r.findSaddr = true;
      out.push(r);
    }
    return out;
  }

  /** RTM_GETROUTE for one packet; see lookup.ts for the encoding rules. */
  async getRoute(q: LookupQuery): Promise<LookupResult> {
    const dst = addressBytes(q.dst)!;
    const data: Record<string, unknown> = { family: AF[q.family], dstLen: q.family === 4 ? 32 : 128, flags: { lookupTable: true } };
    const attrs: Record<string, unknown> = { dst: dst.bytes };
    const u32 = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(n >>> 0);
      return b;
    };
    const port = (n: number) => {
      const b = Buffer.alloc(2);
      b.writeUInt16BE(n);
      return b;
    };
    if (q.ipproto !== undefined) attrs.ipProto = Buffer.from([q.ipproto]);
    if (q.dport !== undefined) attrs.dport = port(q.dport);
    if (q.sport !== undefined) attrs.sport = port(q.sport);
    if (q.uid !== undefined) attrs.uid = u32(q.uid);
    if (q.mark !== undefined) attrs.mark = u32(q.mark);
    if (q.from) {
      attrs.src = addressBytes(q.from)!.bytes;
      data.srcLen = q.family === 4 ? 32 : 128;
    }
    try {
      const [m] = await this.s.getRoute(data as never, attrs as never);
      const links = await this.links(true);
      const a = m.attrs;
      return {
        ok: true,
        table: a.table ?? m.data.table,
        type: String(m.data.type ?? '').toLowerCase(),
        dev: a.oif !== undefined ? links.find((l) => l.index === a.oif)?.name ?? `if${a.oif}` : undefined,
        gateway: a.gateway ? bufAddr(q.family, a.gateway) : undefined,
        src: a.prefsrc ? bufAddr(q.family, a.prefsrc) : undefined,
      };
    } catch (e) {
      return { ok: false, error: errnoOf(e) ?? String((e as Error).message) };
    }
  }

  async addRule(r: RuleSpec): Promise<void> {
    await this.ruleRequest('new', r);
  }

  async deleteRule(r: RuleSpec): Promise<void> {
    await this.ruleRequest('del', r);
  }

  private async ruleRequest(op: 'new' | 'del', r: RuleSpec): Promise<void> {
    const data: Record<string, unknown> = {
      family: AF[r.family],
      table: r.table < 256 ? r.table : 0,
      action: 'toTbl',
      flags: { ...(r.invert ? { invert: true } : {}), ...(r.findSaddr ? { findSaddr: true } : {}) },
    };
    const attrs: Record<string, unknown> = { priority: r.priority, table: r.table, protocol: r.protocol };
    if (r.src) {
      const [a, l] = splitPrefix(r.src);
      data.srcLen = l;
      attrs.src = addressBytes(a)!.bytes;
    }
    if (r.dst) {
      const [a, l] = splitPrefix(r.dst);
      data.dstLen = l;
      attrs.dst = addressBytes(a)!.bytes;
    }
    if (r.iif) attrs.iifname = r.iif;
    if (r.oif) attrs.oifname = r.oif;
    if (r.ipproto !== undefined) attrs.ipProto = r.ipproto;
    if (r.sport) attrs.sportRange = r.sport;
    if (r.dport) attrs.dportRange = r.dport;
    if (r.uid) attrs.uidRange = r.uid;
    if (r.fwmark !== undefined) attrs.fwmark = r.fwmark;
    if (r.fwmask !== undefined) attrs.fwmask = r.fwmask;
    try {
      if (op === 'new') await this.s.newRule(data as never, attrs as never, { flags: FlagsNew.CREATE | FlagsNew.EXCL });
      else await this.s.delRule(data as never, attrs as never);
    } catch (e) {
      throw new WgsplitError('KERNEL', `${op === 'new' ? 'adding' : 'deleting'} rule failed: ${errnoOf(e) ?? e}`, { cause: e });
    }
  }
}

function range(x: { start?: number; end?: number }): Range {
  return { start: x.start ?? 0, end: x.end ?? x.start ?? 0 };
}



