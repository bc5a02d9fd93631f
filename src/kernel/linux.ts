/**
 * KernelPort on the real kernel: netlink for rules, routes, links and addresses, `wg` for
 * endpoints. Only state carrying our protocol tag is reported as ours.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { loTag } from './nsTag.js';
import { PROTOCOL_TAG } from '../model/constants.js';
import type { Family } from '../model/prefix.js';
import type { RouteSpec } from '../model/route.js';
import type { InterfaceFacts } from '../compile/facts.js';
import { isNftOp, isRouteOp, opSize, planSize, type Op, type Plan } from '../plan/plan.js';
import { opText, routeText } from '../plan/render.js';
import { throwRoute, type ThrowSet } from '../model/throwSet.js';
import { WgsplitError } from '../errors.js';
import { Rtnl } from './netlink.js';
import { encodeRoute, encodeThrow, errnoName, RawRoutes, routeMessageMax, scatteredOrder, THROW_MESSAGE_MAX } from './rawRoutes.js';
import type { NftKernel } from './nft.js';
import { stateFilePath } from '../state/owned.js';
import type { NftOp } from '../plan/nftDiff.js';
import { probeRuleSelectors } from './probe.js';
import type { LookupQuery, LookupResult } from './lookup.js';
import type { KernelPort, ObservedKernel } from './port.js';
import { wgEndpoints } from './wg.js';
import { cgroupFacts } from './cgroup.js';
import type { CgroupFacts } from '../compile/facts.js';

const RTPROT_KERNEL = 2; // rtnetlink(7): route installed by the kernel (from an address)
const RT_SCOPE_LINK = 253;

/** Requests in flight at once: well under the ~256 at which the package's socket aborts. */
const IN_FLIGHT = 64;

export class LinuxKernel implements KernelPort {
  private nl = new Rtnl();
  private raw = new RawRoutes();
  private closed = false;
  private ifindex = new Map<string, number>();
  private ifname = new Map<number, string>();
  readonly notes: string[] = [];
  readonly namespaceTag = loTag;
  private nft?: NftKernel;

  /** Loaded on first use: a rule-mode-only setup never imports the nft side (or execa). */
  private async nftKernel(): Promise<NftKernel> {
    if (!this.nft) this.nft = new (await import('./nft.js')).NftKernel(`${stateFilePath()}.nft-cache`);
    return this.nft;
  }
  /** links dumped by interfaceFacts and not yet used by an observe (see observe) */
  private linksFresh = false;

  private async refreshLinks() {
    const links = await this.nl.links(true);
    this.ifindex = new Map(links.map((l) => [l.name, l.index]));
    this.ifname = new Map(links.map((l) => [l.index, l.name]));
    return links;
  }

  async interfaceFacts(names: string[], opts: { endpointsOf?: string[] } = {}): Promise<Map<string, InterfaceFacts>> {
    const links = await this.refreshLinks();
    this.linksFresh = true;
    const wanted = [...new Set(names)];
    // `wg show` is a child process: start it first, it runs while we read the addresses.
    const ask = wanted.filter((n) => links.some((l) => l.name === n) && (!opts.endpointsOf || opts.endpointsOf.includes(n)));
    const wgs = new Map(ask.map((n) => [n, wgEndpoints(n)]));
    const addrs = await this.nl.addresses();
    const out = new Map<string, InterfaceFacts>();
    for (const name of wanted) {
      const link = links.find((l) => l.name === name);
      if (!link) {
        out.set(name, { name, exists: false, up: false, addresses: { 4: [], 6: [] }, endpoints: [] });
        continue;
      }
      const mine = addrs.filter((a) => a.index === link.index);
      // Link-local IPv6 addresses cannot be a source for routed traffic.
      const v6 = mine.filter((a) => a.family === 6 && !a.address.startsWith('fe80:')).map((a) => a.address);
      const v4 = mine.filter((a) => a.family === 4).map((a) => a.address);
      const wg = (await wgs.get(name)) ?? { endpoints: [] };
      if (wg.note) this.notes.push(wg.note);
      const rp = (await this.readSysctls([`net/ipv4/conf/${name}/rp_filter`]))[`net/ipv4/conf/${name}/rp_filter`];
      out.set(name, { name, exists: true, up: link.up, addresses: { 4: v4, 6: v6 }, endpoints: wg.endpoints, rpFilter: rp, ...(link.mtu ? { mtu: link.mtu } : {}) });
    }
    return out;
  }

  /**
   * When this namespace's loopback got its IPv4 address (127.0.0.1, added when lo first
   * comes up and kept while lo goes down and up again), in 1/100 s since boot; undefined
   * while lo has never been up. lo is ifindex 1 in every network namespace.
   */
  async loopbackBirth(): Promise<number | undefined> {
    const stamps = (await this.nl.addresses()).filter((a) => a.index === 1 && a.family === 4 && a.cstamp !== undefined).map((a) => a.cstamp as number);
    return stamps.length ? Math.min(...stamps) : undefined;
  }

  async readCounters() {
    return (await import('./nftCounters.js')).readCounters();
  }

  async observe(opts: { nft?: boolean; routes?: boolean } = {}): Promise<ObservedKernel> {
    const obs: ObservedKernel = { rules: [], routes: [], throws: [], foreignRoutes: new Map(), connected: [] };
    if (opts.nft) obs.nft = await (await this.nftKernel()).observe();
    // The observe right after interfaceFacts (computePlan's) reuses its link dump; every
    // later one (the read-back after writing, the next watcher run) dumps them again.
    if (this.linksFresh) this.linksFresh = false;
    else await this.refreshLinks();
    for (const family of [4, 6] as Family[]) {
      for (const r of await this.nl.rules(family)) if (r.protocol === PROTOCOL_TAG) obs.rules.push(r);
      if (opts.routes === false) continue;
      const ours: RouteSpec[] = [];
      const throws: ThrowSet[] = [];
      const others = await this.raw.dump(family, PROTOCOL_TAG, (i) => this.ifname.get(i), ours, throws);
      for (const r of ours) if (r.table !== 255) obs.routes.push(r);
      for (const s of throws) if (s.table !== 255) obs.throws!.push(s);
      for (const d of others) {
        if (d.table === 255) continue; // local: the kernel's alone
        if (d.table === 254) {
          // IPv6 routes carry no scope (always universe): there a connected network is any
          // kernel unicast route without a gateway, link-local aside.
          const linkScope = d.scope === RT_SCOPE_LINK || (family === 6 && !d.dst.startsWith('fe80:'));
          if (d.protocol === RTPROT_KERNEL && linkScope && d.type === 1 && d.oif !== undefined && !d.gateway) {
            const dev = this.ifname.get(d.oif);
            if (dev) obs.connected!.push({ prefix: d.dst, dev });
          }
        } else if (d.table !== 253 && d.protocol !== PROTOCOL_TAG) {
          const list = obs.foreignRoutes.get(d.table) ?? [];
          if (list.length < 5) list.push(`IPv${family} ${d.dst}${d.oif !== undefined ? ' dev ' + (this.ifname.get(d.oif) ?? d.oif) : ''}`);
          else list.push('');
          obs.foreignRoutes.set(d.table, list);
        }
      }
    }
    return obs;
  }

  async apply(plan: Plan, onProgress?: (done: number, total: number) => void): Promise<void> {
    // A missing `nft` must be found before the first write (sysctls and routes come earlier
    // in the plan), so that its error, exit 2, still means "nothing changed".
    const nftOps = plan.ops.some(isNftOp);
    if (nftOps) (await this.nftKernel()).binary();
    // Phases must stay in order (see plan/diff.ts); inside a phase requests are independent.
    // Progress counts routes: a set of throws is one op but many routes.
    const total = planSize(plan.ops);
    let done = 0;
    for (const phase of phases(plan.ops)) {
      if (phase[0].kind === 'sysctl') {
        for (const o of phase) {
          if (o.kind !== 'sysctl') continue;
          try {
            writeFileSync(`/proc/sys/${o.path}`, String(o.value));
          } catch (e) {
            throw new WgsplitError('KERNEL', `${opText(o)}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
          }
        }
        done += phase.length;
        continue;
      }
      if (isNftOp(phase[0])) {
        await (await this.nftKernel()).apply(phase as NftOp[]);
        done += phase.length;
        onProgress?.(done, total);
        continue;
      }
      if (isRouteOp(phase[0])) {
        const n = planSize(phase);
        const batch = this.routeBatch(phase as RouteOp[], (k) => onProgress?.(done + k, total));
        // Once the routes are on their way, nft can start for a later phase (nft.ts prestartNft).
        if (nftOps && n >= 1000) setImmediate(() => !this.closed && void import('./nft.js').then((m) => !this.closed && m.prestartNft()));
        await batch;
        done += n;
        continue;
      }
      for (let i = 0; i < phase.length; i += IN_FLIGHT) {
        await Promise.all(phase.slice(i, i + IN_FLIGHT).map((o) => this.execute(o)));
        done += Math.min(IN_FLIGHT, phase.length - i);
        onProgress?.(done, total);
      }
    }
  }

  /**
   * Routes go out pre-encoded, many per sendmsg, a set of throws straight from its packed
   * destinations (no object per route). Tolerated, because another writer (the watcher and
   * wg-quick's PostUp) may have got there first: EEXIST on add (retried as a replace, which
   * writes exactly our route) and ESRCH/ENOENT on delete (already gone).
   */
  private async routeBatch(ops: RouteOp[], progress: (n: number) => void): Promise<void> {
    const lookup = (name: string) => this.ifindex.get(name);
    // Messages are encoded while sending (rawRoutes.executeEncoded); the only request that
    // cannot be encoded, a route via a missing device, is refused before anything is sent.
    for (const o of ops) {
      if (o.kind === 'route' && o.op !== 'delete' && o.route.type === 'unicast' && o.route.dev !== undefined && lookup(o.route.dev) === undefined) {
        throw new WgsplitError('NO_INTERFACE', `${o.op} ${opText(o)}: interface ${o.route.dev} does not exist`);
      }
    }
    // Item k of the phase is route k - start[j] of op j, for start[j] <= k < start[j + 1].
    const start = new Float64Array(ops.length + 1);
    for (let j = 0; j < ops.length; j++) start[j + 1] = start[j] + opSize(ops[j]);
    const opOf = (k: number) => {
      let lo = 0;
      let hi = ops.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (start[mid] <= k) lo = mid;
        else hi = mid - 1;
      }
      return lo;
    };
    const encode = (k: number, verb: 'replace' | undefined, out: Buffer, off: number) => {
      const j = opOf(k);
      const o = ops[j];
      return o.kind === 'route' ? encodeRoute(verb ?? o.op, o.route, lookup, out, off) : encodeThrow(verb ?? o.op, o.set, k - start[j], out, off);
    };
    const maxSize = (k: number) => {
      const o = ops[opOf(k)];
      return o.kind === 'route' ? routeMessageMax(o.route) : THROW_MESSAGE_MAX[o.set.family];
    };
    const text = (k: number) => {
      const j = opOf(k);
      const o = ops[j];
      return { op: o.op, text: o.kind === 'route' ? opText(o) : `route ${routeText(throwRoute(o.set, k - start[j]))}` };
    };
    const send = (items: Uint32Array, verb?: 'replace', onProgress?: (n: number) => void) =>
      this.raw.executeEncoded(items.length, (i, out, off) => encode(items[i], verb, out, off), (i) => maxSize(items[i]), 128, onProgress);
    const order = scatteredOrder(start[ops.length]);
    const errs = await send(order, undefined, progress);
    const retry: number[] = [];
    errs.forEach((errno, i) => {
      if (errno === 0) return;
      const k = order[i];
      const { op, text: what } = text(k);
      const name = errnoName(errno);
      if (op === 'add' && name === 'EEXIST') retry.push(k);
      else if (op === 'delete' && (name === 'ESRCH' || name === 'ENOENT')) return;
      else throw new WgsplitError(name === 'ENODEV' ? 'NO_INTERFACE' : 'KERNEL', `${op} ${what}: ${name}`);
    });
    if (retry.length) {
      const again = await send(Uint32Array.from(retry), 'replace');
      again.forEach((errno, i) => {
        if (errno) throw new WgsplitError('KERNEL', `replace ${text(retry[i]).text}: ${errnoName(errno)}`);
      });
    }
  }

  private async execute(o: Op): Promise<void> {
    try {
      if (o.kind === 'rule') {
        if (o.op === 'add') await this.nl.addRule(o.rule);
        else await this.nl.deleteRule(o.rule);
      }
    } catch (e) {
      const err = e as WgsplitError;
      const errno = /\b(E[A-Z]+)\b/.exec(err.message)?.[1];
      // Another writer got there first: the rule is exactly ours (EEXIST) or already gone.
      if (o.kind === 'rule' && ((o.op === 'add' && errno === 'EEXIST') || (o.op === 'delete' && errno === 'ENOENT' && !o.mustExist))) return;
      throw new WgsplitError(err.code ?? 'KERNEL', `${o.op} ${opText(o)}: ${err.message}`, { cause: e });
    }
  }

  async readSysctls(paths: string[]): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const p of paths) {
      if (!/^[a-z0-9_./-]+$/i.test(p) || p.includes('..')) continue;
      try {
        out[p] = Number(readFileSync(`/proc/sys/${p}`, 'utf8').trim());
      } catch {
        /* no such interface (any more) */
      }
    }
    return out;
  }

  lookup(q: LookupQuery): Promise<LookupResult> {
    return this.nl.getRoute(q);
  }

  async cgroups(paths: string[]): Promise<CgroupFacts> {
    return cgroupFacts(paths);
  }

  probeRuleSelectors(): Promise<{ supported: boolean; missing: string[]; definitive: boolean }> {
    return probeRuleSelectors(this.nl);
  }

  longRunning(): void {
    this.raw.sendThread = false;
  }

  close(): void {
    // Also ends a standby nft (nft.ts): none may be started after this.
    this.closed = true;
    this.nft?.close();
    this.nl.close();
    this.raw.close();
  }
}

type RouteOp = Extract<Op, { kind: 'route' | 'throws' }>;

// A set of throws is in the same phase as single routes: they are routes.
const DEL_PHASE: Record<string, string> = { route: 'route-', throws: 'route-', rule: 'rule-', sysctl: 'sysctl-' };
const PUT_PHASE: Record<string, string> = { route: 'route', throws: 'route' };

function phases(ops: Op[]): Op[][] {
  const out: Op[][] = [];
  let key = '';
  for (const o of ops) {
    // nft operations in a row are one transaction, whatever their kind.
    const k = isNftOp(o) ? 'nft' : o.op === 'delete' ? DEL_PHASE[o.kind] : PUT_PHASE[o.kind] ?? o.kind; // no string per op (100k routes)
    if (k !== key) {
      out.push([]);
      key = k;
    }
    out[out.length - 1].push(o);
  }
  return out;
}
