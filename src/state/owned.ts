/**
 * Which interface each of our tables served, so `wgsplit down wg0` from wg-quick's
 * PostDown (which runs after wg0 is deleted, when the kernel has already dropped every
 * route naming it) still finds the state of profiles deleted since they were applied.
 * Kept in /run (tmpfs, gone at reboot like the kernel state it describes), one file per
 * network namespace, keyed by the namespace's inode.
 */
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Endpoint } from '../compile/facts.js';

export interface RememberedInterface {
  addresses: { 4: string[]; 6: string[] };
  endpoints: Endpoint[];
}

export interface CachedPlan {
  key: string;
  units: {
    family: 4 | 6;
    status: 'active' | 'down';
    mode?: 'rule' | 'fwmark';
    notes: string[];
    routes: { n: number; sum: number; xor: number };
    rules: string[]; // sorted rule keys
  }[];
}

export interface OwnedTables {
  /** table number -> interface and profile that last owned it */
  tables: Record<string, { interface: string; profile: string }>;
  /** what each interface looked like when last seen up with addresses (see compile/facts.ts) */
  interfaces?: Record<string, RememberedInterface>;
  /** interfaces taken down with `wgsplit down`: the watcher leaves them alone until `up` */
  stopped?: string[];
  /** our nftables table was installed (so observe looks for it even with no fwmark profile) */
  nft?: boolean;
  /** sysctls wgsplit changed -> their original values, restored when no longer needed */
  sysctls?: Record<string, number>;
  /**
   * Plan cache: per profile, a hash of everything its compile reads and a fingerprint of
   * what that compile wanted. When both still hold, the profile is not compiled again.
   */
  plans?: Record<string, CachedPlan>;
  /** rule-selector probe result, valid for one boot of one kernel */
  probe?: { key: string; supported: boolean; missing: string[] };
}

export interface StateStore {
  load(): OwnedTables;
  save(s: OwnedTables): void;
}

function netnsId(): string {
  try {
    return String(statSync('/proc/self/ns/net').ino);
  } catch {
    return 'default';
  }
}

export function stateDir(): string {
  return process.env.WGSPLIT_STATE_DIR ?? '/run/wgsplit';
}

export function stateFilePath(): string {
  return `${stateDir()}/owned-${netnsId()}.json`;
}

export function lockFilePath(): string {
  return `${stateDir()}/lock-${netnsId()}`;
}

export class FileStateStore implements StateStore {
  constructor(private readonly path = stateFilePath()) {}

  load(): OwnedTables {
    try {
      const s = JSON.parse(readFileSync(this.path, 'utf8')) as OwnedTables;
      return { tables: s.tables ?? {}, interfaces: s.interfaces ?? {}, stopped: s.stopped ?? [], nft: s.nft, probe: s.probe, sysctls: s.sysctls ?? {}, plans: s.plans ?? {} };
    } catch {
      return { tables: {} };
    }
  }

  save(s: OwnedTables): void {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o755 });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(s, null, 1) + '\n', { mode: 0o644 });
    renameSync(tmp, this.path); // atomic: a concurrent reader sees old or new, never half
  }
}

export class MemoryStateStore implements StateStore {
  private s: OwnedTables = { tables: {} };
  load(): OwnedTables {
    return structuredClone(this.s);
  }
  save(s: OwnedTables): void {
    this.s = structuredClone(s);
  }
}

/** Identifies one boot of one kernel: a probe result is valid exactly that long. */
export function kernelKey(): string {
  try {
    return `${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()} ${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}`;
  } catch {
    return 'unknown';
  }
}
