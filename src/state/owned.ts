/**
 * Which interface each of our tables served, so `wgsplit down wg0` from wg-quick's
 * PostDown (which runs after wg0 is deleted, when the kernel has already dropped every
 * route naming it) still finds the state of profiles deleted since they were applied.
 * Kept in /run (tmpfs, gone at reboot like the kernel state it describes), one file per
 * network namespace, named by the namespace's inode.
 *
 * NOTE: the inode names the file but does not identify the namespace: the kernel hands a
 * freed nsfs inode number to the next namespace it creates (proc_alloc_inum takes the lowest
 * free number), so a container or test harness that deletes a namespace and creates another
 * gets the same file. A record obeyed there would be wrong in every field (a "stopped"
 * interface the watcher then never touches, an rp_filter value to restore that belonged to
 * someone else). So each record also carries the namespace's identity (see NamespaceFacts
 * below), and NamespaceBoundStore drops, with a note, a record written under another one.
 * (Checking the record against the kernel is not enough: after `down` nothing of ours is
 * left, and an empty namespace A looks exactly like a fresh namespace B.)
 * The kernel's own never-reused id (SO_NETNS_COOKIE, Linux 5.14) needs getsockopt with an
 * 8-byte buffer, which neither Node nor the `netlink` package offers; file times of the nsfs
 * inode change whenever the kernel evicts and re-creates it (seen here), so they say nothing.
 */
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import type { Endpoint } from '../compile/facts.js';
import type { NamespaceTag } from '../kernel/port.js';
import { WgsplitError } from '../errors.js';
import { errnoText } from '../profile/readText.js';

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
  /** the network namespace instance this record was written in (NamespaceBoundStore) */
  namespace?: string;
}

/**
 * What a record must look like to be used at all. A state file is ours, but it lives in a
 * directory root can edit and survives wgsplit upgrades: a hand-edited or truncated file
 * must be a note and a fresh start, not a crash half-way through an apply.
 */
const familyLists = z.object({ 4: z.array(z.string()), 6: z.array(z.string()) });
const recordSchema = z
  .object({
    tables: z.record(z.object({ interface: z.string(), profile: z.string() })).optional(),
    interfaces: z
      .record(z.object({ addresses: familyLists, endpoints: z.array(z.object({ family: z.union([z.literal(4), z.literal(6)]), address: z.string(), port: z.number() }).passthrough()) }))
      .optional(),
    stopped: z.array(z.string()).optional(),
    nft: z.boolean().optional(),
    sysctls: z.record(z.number()).optional(),
    plans: z.record(z.object({ key: z.string(), units: z.array(z.object({}).passthrough()) }).passthrough()).optional(),
    probe: z.object({ key: z.string(), supported: z.boolean(), missing: z.array(z.string()) }).optional(),
    namespace: z.string().optional(),
  })
  .passthrough();

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

/** An empty WGSPLIT_STATE_DIR is unset (it used to put the files in /); a relative one is made absolute. */
export function stateDir(): string {
  return resolve(process.env.WGSPLIT_STATE_DIR || '/run/wgsplit');
}

export function stateFilePath(): string {
  return `${stateDir()}/owned-${netnsId()}.json`;
}

export function lockFilePath(): string {
  return `${stateDir()}/lock-${netnsId()}`;
}

export class FileStateStore implements StateStore {
  private noted = false;
  /** `note` hears about a record that cannot be used (not JSON, wrong shape), once. */
  constructor(
    readonly path = stateFilePath(),
    private readonly note: (text: string) => void = () => {},
  ) {}

  load(): OwnedTables {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.once(`cannot read the state file ${this.path}: ${errnoText(e)}; starting from an empty record`);
      return { tables: {} };
    }
    let s: OwnedTables;
    try {
      const parsed = recordSchema.safeParse(JSON.parse(text));
      if (!parsed.success) {
        const i = parsed.error.issues[0];
        throw new Error(`${i.path.join('.') || 'the record'}: ${i.message}`);
      }
      s = parsed.data as OwnedTables;
    } catch (e) {
      this.once(`the state file ${this.path} is damaged (${(e as Error).message}); ignoring it and starting from an empty record (it is replaced at the next change)`);
      return { tables: {} };
    }
    return {
      tables: s.tables ?? {},
      interfaces: s.interfaces ?? {},
      stopped: s.stopped ?? [],
      nft: s.nft,
      probe: s.probe,
      sysctls: s.sysctls ?? {},
      plans: s.plans ?? {},
      namespace: s.namespace,
    };
  }

  save(s: OwnedTables): void {
    const tmp = `${this.path}.${process.pid}.tmp`;
    try {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o755 });
      writeFileSync(tmp, JSON.stringify(s, null, 1) + '\n', { mode: 0o644 });
      renameSync(tmp, this.path); // atomic: a concurrent reader sees old or new, never half
    } catch (e) {
      throw new WgsplitError(
        'ENVIRONMENT',
        `cannot write the state file ${this.path}: ${errnoText(e)}; wgsplit records there what it owns (set WGSPLIT_STATE_DIR to a writable directory)`,
        { cause: e },
      );
    }
  }

  private once(text: string): void {
    if (this.noted) return;
    this.noted = true;
    this.note(text);
  }
}

/** A record that says nothing about the kernel (a fresh file, or only the probe result). */
function holdsNothing(s: OwnedTables): boolean {
  return (
    !Object.keys(s.tables ?? {}).length &&
    !Object.keys(s.interfaces ?? {}).length &&
    !(s.stopped ?? []).length &&
    !s.nft &&
    !Object.keys(s.sysctls ?? {}).length &&
    !Object.keys(s.plans ?? {}).length
  );
}

/**
 * This network namespace, as one instance. The boot and the nsfs inode narrow it down; what
 * tells two namespaces with the same inode apart is one of:
 * - `lo N`: when the namespace's loopback got 127.0.0.1 (KernelPort.loopbackBirth), in
 *   1/100 s since boot. The kernel adds that address when lo first comes up and keeps it,
 *   with its creation stamp, while lo goes down and up; a later namespace reusing the inode
 *   brings its own lo up later, so its stamp differs. 10 ms is far below the time it takes
 *   to run wgsplit, delete a namespace and create another. Nothing is written for it.
 * - `tag T`, only where lo has never been up (a bare `ip netns add`, as test harnesses
 *   make them): a random number wgsplit writes to net.ipv4.conf.lo.tag, an IPv4 interface
 *   setting the kernel never reads ("allows you to write a number, which can be used as
 *   required", ip-sysctl.rst), per namespace and 0 in every new one. Written once, when
 *   the first record with content is saved there, and left as it is.
 * Without either (no lo address and no tag), the identity is `lo none`, and wgsplit says
 * that it cannot bind the record (warnUnbindable).
 */
export interface NamespaceFacts {
  loBirth?: number;
  /** net.ipv4.conf.lo.tag of this namespace; absent where there is none */
  tag?: NamespaceTag;
}

export function namespaceIdentityBase(): string {
  let boot = 'unknown';
  try {
    boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    /* not Linux: tests */
  }
  return `boot ${boot} netns ${netnsId()}`;
}

/**
 * A StateStore that only ever returns records written in this namespace instance: a record
 * with another identity (or none: written before records carried one) is dropped with a
 * note, never obeyed, and replaced at the next save. The rule-selector probe result is kept:
 * it describes the kernel, which every namespace shares, and carries its own boot key.
 */
export class NamespaceBoundStore implements StateStore {
  private noted = false;
  private warnedUnbindable = false;
  private readonly base: string;
  constructor(
    private readonly inner: StateStore,
    private readonly ns: NamespaceFacts,
    private readonly note: (text: string) => void,
    private readonly where = 'the state record',
    base?: string,
  ) {
    this.base = base ?? namespaceIdentityBase();
  }

  /** Does `id` name this namespace instance? */
  private matches(id: string | undefined): boolean {
    const m = /^(.*) (lo|tag) (\d+|none)$/.exec(id ?? '');
    if (!m || m[1] !== this.base) return false;
    // Written where nothing could bind it (and said so): it can only be taken on trust, in a
    // namespace that is in the same condition.
    if (m[3] === 'none') return this.ns.loBirth === undefined && !this.ns.tag?.read();
    const n = Number(m[3]);
    if (m[2] === 'lo') return this.ns.loBirth === n;
    return n !== 0 && this.ns.tag?.read() === n;
  }

  /** The identity to write: the loopback stamp, else the tag (written now if need be). */
  private identity(): string {
    if (this.ns.loBirth !== undefined) return `${this.base} lo ${this.ns.loBirth}`;
    const tag = this.ns.tag;
    let v = tag?.read();
    if (tag && v === 0) {
      v = 1 + randomInt(0x7ffffffe);
      try {
        tag.write(v);
        if (tag.read() !== v) v = undefined;
      } catch {
        v = undefined;
      }
    }
    // A non-zero tag someone else wrote serves as well: it is this namespace's until changed.
    return v ? `${this.base} tag ${v}` : `${this.base} lo none`;
  }

  /** What this namespace is called in notes (computing it writes nothing). */
  describe(): string {
    if (this.ns.loBirth !== undefined) return `${this.base} lo ${this.ns.loBirth}`;
    const v = this.ns.tag?.read();
    return v ? `${this.base} tag ${v}` : `${this.base} (loopback never up, no tag yet)`;
  }

  load(): OwnedTables {
    const s = this.inner.load();
    if (holdsNothing(s) || this.matches(s.namespace)) return s;
    if (!this.noted) {
      this.noted = true;
      this.note(
        `${this.where} was written in another network namespace that had this one's inode number (it says "${s.namespace ?? 'nothing'}", this is "${this.describe()}"): dropped, not applied here`,
      );
    }
    return { tables: {}, probe: s.probe };
  }

  save(s: OwnedTables): void {
    if (holdsNothing(s)) {
      // Only the probe result: nothing that needs binding, so nothing is written for it.
      this.inner.save({ ...s, namespace: this.matches(s.namespace) ? s.namespace : undefined });
      return;
    }
    const prev = this.inner.load().namespace;
    const id = this.matches(prev) ? (prev as string) : this.identity();
    this.inner.save({ ...s, namespace: id });
    if (!this.warnedUnbindable && id.endsWith(' lo none')) {
      // warnUnbindable: say it once, where the user can act on it.
      this.warnedUnbindable = true;
      this.note(
        "this network namespace's loopback has never been up and net.ipv4.conf.lo.tag cannot be set, so wgsplit cannot tell it from a later namespace that reuses its inode number; bring lo up (ip link set lo up) so its state record stays bound to it",
      );
    }
  }
}

/** The store a command uses: the file for this namespace, bound to this namespace instance. */
export async function openState(
  kernel: { loopbackBirth?(): Promise<number | undefined>; namespaceTag?: NamespaceTag },
  note: (text: string) => void,
  inner?: StateStore,
): Promise<StateStore> {
  const file = inner ?? new FileStateStore(stateFilePath(), note);
  const loBirth = kernel.loopbackBirth ? await kernel.loopbackBirth() : undefined;
  const where = file instanceof FileStateStore ? `the state file ${file.path}` : 'the state record';
  return new NamespaceBoundStore(file, { loBirth, tag: kernel.namespaceTag }, note, where);
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
