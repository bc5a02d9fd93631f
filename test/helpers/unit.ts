/**
 * Shared bits of the unit tests (no root, no kernel): a seeded random generator, profiles
 * from inline TOML, and the interface facts of the test sandbox's host.
 */
import { fileURLToPath } from 'node:url';
import type { InterfaceFacts } from '../../src/compile/facts.js';
import { formatProblem } from '../../src/errors.js';
import { FakeKernel } from '../../src/kernel/fake.js';
import { parseProfile } from '../../src/profile/parse.js';
import type { Profile } from '../../src/profile/types.js';

// dist/test/helpers/unit.js -> repo root (fixtures are read from the source tree).
export const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** mulberry32: small, fast, reproducible. Returns floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle<T>(xs: readonly T[], rand: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/**
 * A profile from inline TOML; a test that passes a broken one fails loudly. Traffic
 * counters (default on) are off unless the text says `counters`: the goldens of the other
 * features show their own objects; test/unit/counters.test.ts covers the counters.
 */
export function profile(name: string, text: string): Profile {
  const r = parseProfile(`/etc/wgsplit/${name}.toml`, /^counters\b/m.test(text) ? text : `counters = false\n${text}`);
  if (!r.profile) throw new Error(`test profile ${name} does not parse:\n${r.problems.map(formatProblem).join('\n')}`);
  return r.profile;
}

/** The example profile, as written there. */
export const EXAMPLE_TOML = `# all TCP to the internet through wg0 (seed 002)
interface = "wg0"
table = 10086
priority = 10086
protocols = ["tcp"]
exclude = ["@private"]
`;

/** The sandbox host's wg0 (test/sandbox/README.md): both families, one peer. */
export const WG0: Omit<InterfaceFacts, 'name'> = {
  exists: true,
  up: true,
  addresses: { 4: ['10.253.0.2'], 6: ['fd00:253::2'] },
  endpoints: [{ family: 4, address: '20.0.2.1', port: 51820 }],
};

export const WG1: Omit<InterfaceFacts, 'name'> = {
  exists: true,
  up: true,
  addresses: { 4: ['10.254.0.2'], 6: [] },
  endpoints: [{ family: 4, address: '20.0.3.1', port: 51820 }],
};

export function factsMap(...entries: [string, Omit<InterfaceFacts, 'name'>][]): Map<string, InterfaceFacts> {
  return new Map(entries.map(([name, f]) => [name, { name, ...structuredClone(f) }]));
}

/**
 * A fake host: wg0 and wg1 as above, plus what a real machine has that is not ours (the
 * main table's routes, tailscale's table 52), so tests also prove none of it is touched.
 */
export function fakeHost(opts: ConstructorParameters<typeof FakeKernel>[0] = {}): FakeKernel {
  const k = new FakeKernel(opts);
  k.setInterface('wg0', WG0).setInterface('wg1', WG1).setInterface('eth0', { addresses: { 4: ['192.168.1.2'], 6: ['2a00:2::2'] } });
  k.setInterface('tailscale0', { addresses: { 4: ['100.100.1.1'], 6: [] } });
  k.setInterface('br-pub', { addresses: { 4: ['45.10.0.1'], 6: [] } });
  // Connected networks (proto kernel): the LAN, a docker bridge pinned to a public range,
  // and the tunnel's own subnet.
  k.seedRoute({ family: 4, table: 254, type: 'unicast', dst: '192.168.1.0/24', metric: 0, protocol: 2, dev: 'eth0', src: '192.168.1.2' });
  k.seedRoute({ family: 6, table: 254, type: 'unicast', dst: '2a00:2::/64', metric: 256, protocol: 2, dev: 'eth0' });
  k.seedRoute({ family: 4, table: 254, type: 'unicast', dst: '45.10.0.0/24', metric: 0, protocol: 2, dev: 'br-pub', src: '45.10.0.1' });
  k.seedRoute({ family: 4, table: 254, type: 'unicast', dst: '10.253.0.0/24', metric: 0, protocol: 2, dev: 'wg0', src: '10.253.0.2' });
  k.seedRoute({ family: 4, table: 254, type: 'unicast', dst: '0.0.0.0/0', metric: 0, protocol: 16, dev: 'eth0' });
  k.seedRoute({ family: 6, table: 254, type: 'unicast', dst: '::/0', metric: 1024, protocol: 9, dev: 'eth0' });
  k.seedRoute({ family: 4, table: 52, type: 'unicast', dst: '100.64.0.0/10', metric: 0, protocol: 4, dev: 'tailscale0' });
  k.seedRule({ family: 4, priority: 5270, table: 52, protocol: 0 });
  return k;
}

/** Lines of a dump that are not ours (no `proto wgsplit`). */
export function foreignLines(dump: string): string[] {
  return dump.split('\n').filter((l) => l && !l.endsWith('proto wgsplit') && !l.includes('proto wgsplit '));
}
