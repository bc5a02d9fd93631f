/** `status` for proxy profiles: where the traffic goes and whether anything listens there. */
import type { Unit } from '../../compile/desired.js';
import { proxyEndpoint } from '../../compile/proxy.js';
import { proxyListeners } from '../../kernel/listeners.js';
import type { Family } from '../../model/prefix.js';
import type { Profile, Protocol } from '../../profile/types.js';

export interface ProxyStatus {
  port: number;
  addresses: string[];
  /** per family and protocol the profile sends: is a socket there to take it */
  listening: { family: string; protocol: Protocol; listening: boolean }[];
  /** what status prints */
  line: string;
}

export function proxyStatus(p: Profile, units: Unit[]): ProxyStatus {
  const t = p.proxy!;
  const families = [...new Set(units.map((u) => u.family))] as Family[];
  const found = proxyListeners(t.port);
  const listening = families.flatMap((f) => (p.protocols ?? ['tcp', 'udp']).map((protocol) => ({ family: `ipv${f}`, protocol, listening: !!found[f][protocol as 'tcp' | 'udp'] })));
  const where = families.map((f) => proxyEndpoint(t, f)).join(' and ');
  const missing = listening.filter((l) => !l.listening).map((l) => `${l.protocol} (${l.family})`);
  const line = missing.length
    ? `proxy ${where}: NO LISTENER on port ${t.port} for ${missing.join(', ')}: that traffic fails (refused, not leaked) until the proxy runs`
    : `proxy ${where}: listening (${[...new Set(listening.map((l) => l.protocol))].join(', ')})`;
  return { port: t.port, addresses: families.map((f) => t.addresses[f]!), listening, line };
}

export const proxyStatusLine = (s: ProxyStatus) => s.line;
