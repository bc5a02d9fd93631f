/**
 * An in-memory KernelPort for tests (no root, no sockets): interfaces, rules and routes,
 * foreign ones included, with the kernel's rules for identity and errors as far as wgsplit
 * can observe them:
 * - rules are kept in kernel order: a new rule goes after the last rule whose priority is
 *   lower or equal (fib_nl_newrule);
 * - a rule `add` (NLM_F_CREATE|NLM_F_EXCL) fails with EEXIST when fib_rules.c rule_exists
 *   finds one equal in every field, except that src/dst are compared only when the new rule
 *   has them and flags (FIND_SADDR, invert) are not compared at all;
 * - a rule `delete` removes the first rule, in list order, that matches every field the
 *   request sets (rule_find: unset fields are wildcards), ENOENT when none does;
 * - a route `add` fails with EEXIST when its slot (family, table, dst, metric) is taken, by
 *   anyone; `replace` overwrites the slot (NLM_F_CREATE|NLM_F_REPLACE);
 * - deleting a missing rule is ENOENT, a missing route ESRCH (the route delete names type
 *   and protocol, so it never removes a foreign route sharing the slot);
 * - a unicast route through a device that does not exist is ENODEV, a `src` that is not
 *   one of the device's addresses EINVAL.
 * observe() also reports connected networks: unicast routes in main with protocol kernel (2)
 * and a device, as the kernel makes them from an interface's addresses.
 * `dropSelectors` simulates an old kernel that ignores rule attributes it does not know
 * (nla_parse drops types above its maxtype) and stores a wider rule than was asked for.
 * Every executed operation is appended to `log` as `<op> <opText>`; `dump()` is the sorted
 * text of every rule and route, for golden comparisons.
 */
import type { CgroupFacts, InterfaceFacts } from '../compile/facts.js';
import { absentInterface } from '../compile/facts.js';
import { WgsplitError } from '../errors.js';
import { PROTOCOL_TAG } from '../model/constants.js';
import { parseRuleComment } from '../model/nft.js';
import type { Family } from '../model/prefix.js';
import { routeSlot, type RouteSpec } from '../model/route.js';
import type { Range, RuleSpec } from '../model/rule.js';
import { expandOps, isNftOp, type Op, type Plan } from '../plan/plan.js';
import { splitThrows } from '../model/throwSet.js';
import type { NftOp } from '../plan/nftDiff.js';
import { FakeNft } from './fakeNft.js';
import { opText, routeText, ruleText } from '../plan/render.js';
import type { KernelPort, ObservedKernel } from './port.js';

/** Rule attributes an old kernel may not know: ipproto/sport/dport/protocol (4.17), uid (4.10). */
export type DroppableRuleField = 'ipproto' | 'dport' | 'sport' | 'uid' | 'protocol';

export interface FakeKernelOptions {
  /** true = drop ipproto, dport, sport and uid (a pre-4.17 kernel that still knows FRA_PROTOCOL) */
  dropSelectors?: boolean | DroppableRuleField[];
  /** inject a failure: return an errno name (e.g. 'ENOBUFS') to make this op fail */
  failWhen?: (o: Op) => string | undefined;
}

const OLD_KERNEL_DROPS: DroppableRuleField[] = ['ipproto', 'dport', 'sport', 'uid'];
/** Tables never reported as someone else's collision (same as the Linux adapter). */
const NOT_FOREIGN = new Set([253, 254, 255]);
const RTPROT_KERNEL = 2;

export class FakeKernel implements KernelPort {
  readonly interfaces = new Map<string, InterfaceFacts>();
  rules: RuleSpec[] = [];
  routes: RouteSpec[] = [];
  /** every operation executed successfully, in order, as `<op> <opText>` */
  readonly log: string[] = [];
  /** what readCounters() reports for counter rules that exist in the fake table, by key */
  readonly counterValues = new Map<string, { packets: number; bytes: number }>();
  /** how many times observe() was called */
  observeCalls = 0;
  /** how many of those read the routes */
  routeDumps = 0;
  private readonly drops: DroppableRuleField[];
  private readonly failWhen?: (o: Op) => string | undefined;

  constructor(opts: FakeKernelOptions = {}) {
    this.drops = opts.dropSelectors === true ? OLD_KERNEL_DROPS : opts.dropSelectors || [];
    this.failWhen = opts.failWhen;
  }

  async readCounters(): Promise<Map<string, { packets: number; bytes: number }>> {
    const keys = new Set((this.nft.observe().rules ?? []).map((r) => parseRuleComment(r.comment)?.key));
    return new Map([...this.counterValues].filter(([k]) => keys.has(k)));
  }

  /** Add or change an interface (exists and up unless said otherwise). */
  setInterface(name: string, facts: Partial<Omit<InterfaceFacts, 'name'>> = {}): this {
    this.interfaces.set(name, {
      name,
      exists: facts.exists ?? true,
      up: facts.up ?? true,
      addresses: { 4: [...(facts.addresses?.[4] ?? [])], 6: [...(facts.addresses?.[6] ?? [])] },
      endpoints: [...(facts.endpoints ?? [])],
    });
    return this;
  }

  /** Delete an interface: like the kernel, silently drop every route through it, in every table. */
  deleteInterface(name: string): this {
    this.interfaces.delete(name);
    this.routes = this.routes.filter((r) => r.dev !== name);
    return this;
  }

  /** Put a route or rule there directly (someone else's, or ours written earlier), no log. */
  seedRoute(r: RouteSpec): this {
    this.routes = this.routes.filter((x) => routeSlot(x) !== routeSlot(r));
    this.routes.push({ ...r });
    return this;
  }

  seedRule(r: RuleSpec): this {
    this.insertRule({ ...r });
    return this;
  }

  /**
   * When the namespace's loopback came up (see KernelPort.loopbackBirth); a test "re-creates
   * the namespace" by changing it, or models a loopback that never came up with undefined.
   */
  loBirth: number | undefined = 4242;

  async loopbackBirth(): Promise<number | undefined> {
    return this.loBirth;
  }

  /** net.ipv4.conf.lo.tag of the fake namespace (0 in a new one); undefined: cannot be set */
  loTag: number | undefined = 0;
  readonly namespaceTag = {
    read: () => this.loTag,
    write: (v: number) => {
      if (this.loTag === undefined) throw Object.assign(new Error('EACCES'), { code: 'EACCES' });
      this.loTag = v;
    },
  };

  /** Clear the op log (e.g. between a first and a second apply). */
  clearLog(): void {
    this.log.length = 0;
  }

  async interfaceFacts(names: string[]): Promise<Map<string, InterfaceFacts>> {
    const out = new Map<string, InterfaceFacts>();
    for (const name of new Set(names)) {
      const f = this.interfaces.get(name);
      if (!f) {
        out.set(name, absentInterface(name));
        continue;
      }
      // Like the Linux adapter: the interface's rp_filter is read from its sysctl.
      const rp = this.sysctls.get(`net/ipv4/conf/${name}/rp_filter`);
      out.set(name, rp === undefined ? structuredClone(f) : { ...structuredClone(f), rpFilter: rp });
    }
    return out;
  }

  /** wgsplit's nftables table (`inet wgsplit`) as objects */
  readonly nft = new FakeNft();
  /** sysctls by path under /proc/sys */
  sysctls = new Map<string, number>();

  /** cgroup v2 as the fake's machine has it: ids of existing cgroups, hybrid layout by default */
  cgroupIds = new Map<string, number>();
  cgroupPrefix = 'unified/';
  cgroupOwnBase = 'wgsplit.slice';
  cgroupsUnavailable?: string;

  async cgroups(paths: string[]): Promise<CgroupFacts> {
    const ids: Record<string, number> = {};
    for (const p of paths) if (this.cgroupIds.has(p)) ids[p] = this.cgroupIds.get(p)!;
    return { nftPrefix: this.cgroupPrefix, ids, ownBase: this.cgroupOwnBase, ...(this.cgroupsUnavailable && { unavailable: this.cgroupsUnavailable }) };
  }

  async readSysctls(paths: string[]): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const p of paths) if (this.sysctls.has(p)) out[p] = this.sysctls.get(p)!;
    return out;
  }

  async observe(opts: { nft?: boolean; routes?: boolean } = {}): Promise<ObservedKernel> {
    this.observeCalls++;
    const obs: ObservedKernel = { rules: [], routes: [], throws: [], foreignRoutes: new Map(), connected: [] };
    if (opts.nft) obs.nft = this.nft.observe();
    for (const r of this.rules) if (r.protocol === PROTOCOL_TAG) obs.rules.push({ ...r });
    // Like LinuxKernel: without the route dump, no connected networks or foreign routes either.
    if (opts.routes === false) return obs;
    this.routeDumps++;
    for (const r of this.routes) {
      if (r.protocol === PROTOCOL_TAG) obs.routes.push({ ...r });
      else if (r.table === 254 && r.protocol === RTPROT_KERNEL && r.type === 'unicast' && r.dev) {
        // A network the host is directly on (the kernel made it from an address): LAN, docker bridge.
        obs.connected!.push({ prefix: r.dst, dev: r.dev });
      } else if (!NOT_FOREIGN.has(r.table)) {
        const list = obs.foreignRoutes.get(r.table) ?? [];
        list.push(`IPv${r.family} ${routeText(r)}`);
        obs.foreignRoutes.set(r.table, list);
      }
    }
    // Our throws packed, as LinuxKernel's dump returns them (model/throwSet.ts).
    const split = splitThrows(obs.routes);
    obs.routes = split.routes;
    obs.throws = split.throws;
    return obs;
  }

  async apply(plan: Plan, onProgress?: (done: number, total: number) => void): Promise<void> {
    let done = 0;
    // A route at a time: a set of throws is applied as one route op per throw.
    const ops = expandOps(plan.ops);
    for (let i = 0; i < ops.length; i++) {
      const o = ops[i];
      if (isNftOp(o)) {
        // Consecutive nft operations are one transaction, as on the real kernel.
        let j = i;
        while (j + 1 < ops.length && isNftOp(ops[j + 1])) j++;
        const batch = ops.slice(i, j + 1) as NftOp[];
        const injected = batch.map((x) => this.failWhen?.(x)).find(Boolean);
        if (injected) throw new WgsplitError('KERNEL', `nft -f failed: ${injected}`);
        this.nft.apply(batch);
        for (const x of batch) this.log.push(`${x.op} ${opText(x)}`);
        done += batch.length;
        onProgress?.(done, ops.length);
        i = j;
        continue;
      }
      try {
        this.execute(o);
      } catch (e) {
        const err = e as WgsplitError;
        throw new WgsplitError(err.code ?? 'KERNEL', `${o.op} ${opText(o)}: ${err.message}`, { cause: e });
      }
      this.log.push(`${o.op} ${opText(o)}`);
      onProgress?.(++done, ops.length);
    }
  }

  close(): void {}

  /** Sorted text of every rule and route (ours and foreign), one per line, then the nft table's objects. */
  dump(): string {
    const lines = [
      ...this.rules.map((r) => `rule -${r.family} ${ruleText(r)}`),
      ...this.routes.map((r) => `route -${r.family} ${routeText(r)}`),
    ].sort();
    const nft = this.nft.dump();
    return (lines.length ? lines.join('\n') + '\n' : '') + (nft ? nft.replace(/^/gm, 'nft ').replace(/nft $/, '') : '');
  }

  private execute(o: Op): void {
    const injected = this.failWhen?.(o);
    if (injected) throw new WgsplitError('KERNEL', injected);
    if (o.kind === 'rule') {
      // An old kernel ignores attributes it does not know, in requests of both kinds.
      const req = this.strip(o.rule);
      if (o.op === 'add') {
        if (this.rules.some((r) => ruleExists(req, r))) throw new WgsplitError('KERNEL', 'EEXIST');
        this.insertRule(req);
      } else {
        const i = this.rules.findIndex((r) => ruleFind(req, r));
        if (i < 0) throw new WgsplitError('KERNEL', 'ENOENT');
        this.rules.splice(i, 1);
      }
      return;
    }
    if (o.kind === 'sysctl') {
      this.sysctls.set(o.path, o.value);
      return;
    }
    if (o.kind !== 'route') throw new WgsplitError('INTERNAL', `the fake executes ${o.kind} operations in transactions`);
    const r = o.route;
    const slot = routeSlot(r);
    const i = this.routes.findIndex((x) => routeSlot(x) === slot);
    if (o.op === 'delete') {
      if (i < 0 || this.routes[i].type !== r.type || this.routes[i].protocol !== r.protocol) throw new WgsplitError('KERNEL', 'ESRCH');
      this.routes.splice(i, 1);
      return;
    }
    this.checkRoute(r);
    if (o.op === 'add') {
      if (i >= 0) throw new WgsplitError('KERNEL', 'EEXIST');
      this.routes.push({ ...r });
    } else if (i >= 0) this.routes[i] = { ...r };
    else this.routes.push({ ...r });
  }

  private checkRoute(r: RouteSpec): void {
    if (r.type !== 'unicast') return;
    const dev = r.dev === undefined ? undefined : this.interfaces.get(r.dev);
    if (!dev || !dev.exists) throw new WgsplitError('KERNEL', 'ENODEV');
    if (r.src !== undefined && !dev.addresses[r.family as Family].includes(r.src)) throw new WgsplitError('KERNEL', 'EINVAL');
  }

  private insertRule(r: RuleSpec): void {
    let at = 0;
    for (let i = 0; i < this.rules.length; i++) if (this.rules[i].family === r.family && this.rules[i].priority <= r.priority) at = i + 1;
    this.rules.splice(at, 0, r);
  }

  private strip(r: RuleSpec): RuleSpec {
    const s: RuleSpec = { ...r };
    for (const f of this.drops) {
      if (f === 'protocol') s.protocol = 0;
      else delete s[f];
    }
    return s;
  }
}

const sameRange = (a?: Range, b?: Range) => (a?.start ?? -1) === (b?.start ?? -1) && (a?.end ?? -1) === (b?.end ?? -1);

/** fib_rules.c rule_exists: would the kernel refuse `n` (NLM_F_EXCL) because of `r`? */
function ruleExists(n: RuleSpec, r: RuleSpec): boolean {
  return (
    r.family === n.family &&
    r.priority === n.priority &&
    r.table === n.table &&
    (r.iif ?? '') === (n.iif ?? '') &&
    (r.oif ?? '') === (n.oif ?? '') &&
    (r.fwmark ?? 0) === (n.fwmark ?? 0) &&
    (r.fwmask ?? 0) === (n.fwmask ?? 0) &&
    sameRange(r.uid, n.uid) &&
    (r.ipproto ?? 0) === (n.ipproto ?? 0) &&
    r.protocol === n.protocol &&
    sameRange(r.sport, n.sport) &&
    sameRange(r.dport, n.dport) &&
    // fib4/fib6_rule_compare: addresses only when the new rule has them
    (n.src === undefined || r.src === n.src) &&
    (n.dst === undefined || r.dst === n.dst)
  );
}

/** fib_rules.c rule_find: does `r` match delete request `q` (unset fields match anything)? */
function ruleFind(q: RuleSpec, r: RuleSpec): boolean {
  return (
    r.family === q.family &&
    r.priority === q.priority &&
    (!q.table || r.table === q.table) &&
    (!q.iif || r.iif === q.iif) &&
    (!q.oif || r.oif === q.oif) &&
    (!q.fwmark || r.fwmark === q.fwmark) &&
    (!q.fwmask || r.fwmask === q.fwmask) &&
    (!q.uid || sameRange(r.uid, q.uid)) &&
    (!q.ipproto || r.ipproto === q.ipproto) &&
    (!q.protocol || r.protocol === q.protocol) &&
    (!q.sport || sameRange(r.sport, q.sport)) &&
    (!q.dport || sameRange(r.dport, q.dport)) &&
    (q.src === undefined || r.src === q.src) &&
    (q.dst === undefined || r.dst === q.dst)
  );
}
