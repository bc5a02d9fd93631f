/**
 * Does this kernel keep every rule selector wgsplit uses? Probed, not guessed from version
 * strings (distributions backport): add a rule that can match nothing (a table that does not
 * exist, uid 4294967294, port 1), read it back, delete it. A kernel that does not know an
 * attribute silently drops it (DESIGN.md), which the read-back shows.
 */
import { randomInt } from 'node:crypto';
import type { RuleSpec } from '../model/rule.js';
import type { Rtnl } from './netlink.js';

const PROBE_PRIORITY = 32765; // just before main's 32766; the probe rule lives for a millisecond
/**
 * The probe's own rtnetlink protocol: not wgsplit's tag (87), so a concurrent `apply` never
 * takes the probe rule for an orphan of ours and deletes it under the probe's read-back.
 */
const PROBE_PROTOCOL = 86;

/**
 * A table nobody uses (a lookup there falls through), different for every probe: `status`
 * or `diff` (no lock) may probe while a PostUp does, and with one fixed table the second
 * add is EEXIST or the first probe's cleanup deletes the second's rule before its read-back,
 * and the answer "unsupported" would be cached for the whole boot.
 */
function probeTable(): number {
  return 0xf0000000 + randomInt(0, 0x0ffffff0);
}

/**
 * `definitive` is false when a request failed (permission, a race): such an answer says
 * nothing about the kernel and must not be cached.
 */
export async function probeRuleSelectors(nl: Rtnl): Promise<{ supported: boolean; missing: string[]; definitive: boolean }> {
  let definitive = true;
  const table = probeTable();
  const probes: RuleSpec[] = [
    { family: 4, priority: PROBE_PRIORITY, table, protocol: PROBE_PROTOCOL, src: '0.0.0.0/32', iif: 'lo', ipproto: 6, dport: { start: 1, end: 1 }, sport: { start: 1, end: 1 }, uid: { start: 4294967294, end: 4294967294 } },
    { family: 6, priority: PROBE_PRIORITY, table, protocol: PROBE_PROTOCOL, src: '::1/128', iif: 'lo', ipproto: 6, dport: { start: 1, end: 1 }, uid: { start: 4294967294, end: 4294967294 }, findSaddr: true },
  ];
  const missing = new Set<string>();
  for (const want of probes) {
    try {
      await nl.addRule(want);
    } catch (e) {
      missing.add(`IPv${want.family} rules (${(e as Error).message})`);
      definitive = false;
      continue;
    }
    try {
      const got = (await nl.rules(want.family)).find((r) => r.priority === PROBE_PRIORITY && r.table === table);
      if (!got) {
        missing.add(`IPv${want.family} rule read-back`);
        definitive = false;
      }
      else {
        if (got.protocol !== PROBE_PROTOCOL) missing.add('protocol (FRA_PROTOCOL, 4.17)');
        if (got.ipproto !== want.ipproto) missing.add('ipproto (4.17)');
        if (got.dport?.start !== 1) missing.add('dport (4.17)');
        if (want.sport && got.sport?.start !== 1) missing.add('sport (4.17)');
        if (got.uid?.start !== 4294967294) missing.add('uidrange (4.10)');
        if (got.iif !== 'lo') missing.add('iif');
        if (want.findSaddr && !got.findSaddr) missing.add('FIB_RULE_FIND_SADDR (IPv6)');
      }
    } finally {
      // Delete by priority and table only: an old kernel ignores the rest anyway.
      await nl.deleteRule({ family: want.family, priority: PROBE_PRIORITY, table, protocol: PROBE_PROTOCOL }).catch(() =>
        nl.deleteRule({ ...want }).catch(() => undefined),
      );
    }
  }
  return { supported: missing.size === 0, missing: [...missing], definitive };
}
