/**
 * KernelPort on the real kernel: netlink for rules, routes, links and addresses, `wg` for
 * endpoints. Only state carrying our protocol tag is reported as ours.
 */
import { PROTOCOL_TAG } from '../model/constants.js';
import type { Family } from '../model/prefix.js';
import type { RouteSpec } from '../model/route.js';
import type { InterfaceFacts } from '../compile/facts.js';
import type { Op, Plan } from '../plan/plan.js';
import { opText } from '../plan/render.js';
import { WgsplitError } from '../errors.js';
import { Rtnl } from './netlink.js';
import type { KernelPort, ObservedKernel } from './port.js';
import { wgEndpoints } from './wg.js';

const RTPROT_KERNEL = 2; // rtnetlink(7): route installed by the kernel (from an address)
const RT_SCOPE_LINK = 253;

/** Requests in flight at once: well under the ~256 at which the package's socket aborts. */
const IN_FLIGHT = 64;

export class LinuxKernel implements KernelPort {
  private nl = new Rtnl();
  readonly notes: string[] = [];

  async interfaceFacts(names: string[]): Promise<Map<string, InterfaceFacts>> {
    const links = await this.nl.links(true);
    const addrs = await this.nl.addresses();
    const out = new Map<string, InterfaceFacts>();
    for (const name of new Set(names)) {
      const link = links.find((l) => l.name === name);
      if (!link) {
        out.set(name, { name, exists: false, up: false, addresses: { 4: [], 6: [] }, endpoints: [] });
        continue;
      }
      const mine = addrs.filter((a) => a.index === link.index);
      // Link-local IPv6 addresses cannot be a source for routed traffic.
      const v6 = mine.filter((a) => a.family === 6 && !a.address.startsWith('fe80:')).map((a) => a.address);
      const v4 = mine.filter((a) => a.family === 4).map((a) => a.address);
      const wg = await wgEndpoints(name);
      if (wg.note) this.notes.push(wg.note);
      out.set(name, { name, exists: true, up: link.up, addresses: { 4: v4, 6: v6 }, endpoints: wg.endpoints });
    }
    return out;
  }

  async observe(): Promise<ObservedKernel> {
    const obs: ObservedKernel = { rules: [], routes: [], foreignRoutes: new Map(), connected: [] };
    for (const family of [4, 6] as Family[]) {
      for (const r of await this.nl.rules(family)) if (r.protocol === PROTOCOL_TAG) obs.rules.push(r);
      for (const d of await this.nl.routes(family)) {
        if (d.protocol === PROTOCOL_TAG && d.spec) obs.routes.push(d.spec);
        else if (d.table === 254 && d.protocol === RTPROT_KERNEL && d.scope === RT_SCOPE_LINK && d.dev && d.spec?.type === 'unicast') {
          obs.connected!.push({ prefix: d.dst, dev: d.dev });
        }
        else if (d.table !== 254 && d.table !== 253) {
          const list = obs.foreignRoutes.get(d.table) ?? [];
          list.push(`IPv${family} ${d.text}`);
          obs.foreignRoutes.set(d.table, list);
        }
      }
    }
    return obs;
  }

  async apply(plan: Plan, onProgress?: (done: number, total: number) => void): Promise<void> {
    // Phases must stay in order (see plan/diff.ts); inside a phase requests are independent.
    let done = 0;
    for (const phase of phases(plan.ops)) {
      for (let i = 0; i < phase.length; i += IN_FLIGHT) {
        await Promise.all(phase.slice(i, i + IN_FLIGHT).map((o) => this.execute(o)));
        done += Math.min(IN_FLIGHT, phase.length - i);
        onProgress?.(done, plan.ops.length);
      }
    }
  }

  private async execute(o: Op): Promise<void> {
    try {
      if (o.kind === 'rule') {
        if (o.op === 'add') await this.nl.addRule(o.rule);
        else await this.nl.deleteRule(o.rule);
      } else if (o.op === 'delete') await this.nl.deleteRoute(o.route as RouteSpec);
      else await this.nl.putRoute(o.route, o.op === 'replace');
    } catch (e) {
      const err = e as WgsplitError;
      throw new WgsplitError(err.code ?? 'KERNEL', `${o.op} ${opText(o)}: ${err.message}`, { cause: e });
    }
  }

  close(): void {
    this.nl.close();
  }
}

function phases(ops: Op[]): Op[][] {
  const out: Op[][] = [];
  let key = '';
  for (const o of ops) {
    const k = `${o.kind}:${o.op === 'delete' ? 'del' : 'put'}`;
    if (k !== key) {
      out.push([]);
      key = k;
    }
    out[out.length - 1].push(o);
  }
  return out;
}
