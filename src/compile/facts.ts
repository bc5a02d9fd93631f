/**
 * What compile needs to know about the machine, gathered by kernel/observe.ts. Plain data,
 * so compile stays pure and tests can state facts directly.
 */
import type { Family } from '../model/prefix.js';

export interface Endpoint {
  family: Family;
  address: string;
  port: number;
}

export interface InterfaceFacts {
  name: string;
  exists: boolean;
  up: boolean;
  /** addresses by family, primary first (no prefix length) */
  addresses: Record<Family, string[]>;
  /** WireGuard peers' endpoints (`wg show IFACE endpoints`); empty when unknown */
  endpoints: Endpoint[];
}

export function absentInterface(name: string): InterfaceFacts {
  return { name, exists: false, up: false, addresses: { 4: [], 6: [] }, endpoints: [] };
}
