/**
 * One selector model, its renderings in agreement: a packet matches one of the `ip rule`
 * combinations compile writes exactly when explain finds no mismatch, and the nft
 * statements name the same protocols and ranges.
 */
import test from 'ava';
import { IPPROTO } from '../../src/model/constants.js';
import type { Range } from '../../src/model/rule.js';
import { nftSelectors, ruleSelectors, trafficMismatch, uidMismatch, type Protocol, type Selector } from '../../src/model/selector.js';
import { rng } from '../helpers/unit.js';

const inRange = (v: number | undefined, r: Range | undefined) => r === undefined || (v !== undefined && v >= r.start && v <= r.end);

test('a packet matches one of the rules compile writes exactly when explain finds no mismatch (2000 random cases)', (t) => {
  const r = rng(21);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
  const ranges = (max: number): Range[] =>
    Array.from({ length: Math.floor(r() * 3) }, () => {
      const a = Math.floor(r() * max);
      return { start: a, end: a + Math.floor(r() * 3) };
    });
  let matched = 0;
  for (let i = 0; i < 2000; i++) {
    const protos = pick<Protocol[] | undefined>([undefined, ['tcp'], ['udp'], ['tcp', 'udp'], ['icmp']]);
    const s: Selector = { protocols: protos, dports: ranges(8), sports: ranges(8), uids: ranges(4) };
    const family = pick([4, 6] as const);
    const q = { proto: pick<Protocol | undefined>([undefined, 'tcp', 'udp', 'icmp']), dport: pick([undefined, 0, 1, 2, 3, 5, 8]), sport: pick([undefined, 0, 2, 4, 9]), uid: pick([undefined, 0, 1, 3]) };
    const rules = ruleSelectors(s, family);
    t.is(rules.length, (protos?.length ?? 1) * Math.max(1, s.dports.length) * Math.max(1, s.sports.length) * Math.max(1, s.uids.length), 'one rule per combination');
    const byRule = rules.some((x) => (x.ipproto === undefined || (q.proto !== undefined && IPPROTO[q.proto][family] === x.ipproto)) && inRange(q.dport, x.dport) && inRange(q.sport, x.sport) && inRange(q.uid ?? 0, x.uid));
    const byExplain = trafficMismatch(s, q) === undefined && uidMismatch(s, q) === undefined;
    t.is(byRule, byExplain, `case ${i}: ${JSON.stringify({ s, q, family })}`);
    if (byRule) matched++;
  }
  t.true(matched > 100 && matched < 1900, `both outcomes are sampled (${matched} matched)`);
});

test('nft statements: the same protocols (ICMPv6 by its nft name) and ranges, nothing for what is not selected', (t) => {
  t.deepEqual(nftSelectors({ family: 4, dports: [], sports: [], uids: [] }), []);
  t.deepEqual(nftSelectors({ family: 6, protocols: ['tcp', 'icmp'], dports: [{ start: 80, end: 80 }, { start: 8000, end: 8080 }], sports: [], uids: [{ start: 1000, end: 1000 }] }), [
    'meta l4proto { tcp, ipv6-icmp }',
    'th dport { 80, 8000-8080 }',
    'meta skuid { 1000 }',
  ]);
  t.is(trafficMismatch({ protocols: ['tcp'], dports: [{ start: 80, end: 80 }, { start: 8000, end: 8080 }], sports: [], uids: [] }, { proto: 'tcp', dport: 22 }), 'destination port 22 is not in 80, 8000-8080');
});
