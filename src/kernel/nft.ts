/**
 * wgsplit's nftables table on the real kernel.
 *
 * Reading: over nfnetlink (nftNetlink.ts), with `nft -j list table` (nftJson.ts) as the
 * fallback where that socket cannot be used. A set-element dump costs ~1.3 s at 100k
 * prefixes (the kernel restarts its walk of the set for every 32 KiB message), so the
 * table as last seen is kept in a cache file next to the state file together with the
 * ruleset generation (NFT_MSG_GETGEN) it was valid at and the tag wgsplit wrote into the
 * table's comment when it created it. nf_tables bumps the generation with every committed
 * transaction, by anyone, in this network namespace: an unchanged generation and tag mean
 * the table is exactly as cached, so the cache can never hide drift. A new namespace (or a
 * re-created table) has another tag.
 *
 * Writing: one phase's operations as `nft -f` transactions (plan/nftScript.ts renders
 * them), except elements of address sets, which go over nfnetlink in one batch (one
 * transaction too): nft 1.0.6 loads every element of a set before it adds or removes one,
 * 2.3 s for a one-line change at 100k prefixes, while the kernel takes the batch in
 * milliseconds. Order then: (1) nft -f creates what is new (table, sets, chains: nothing
 * references them yet), (2) the element batch, (3) nft -f swaps rules and removes what is
 * gone. Each step is atomic; every state in between is one the plan allows (new sets are
 * filled before any rule uses them; changed elements land before the rules that change with
 * them, as routes come before rules). A set created in this run may be filled in several
 * batches (nothing uses it yet); changes to a set in use must fit one batch (the socket's
 * send buffer), else the whole phase is one nft -f transaction, as it is when a chain or
 * set is re-created.
 *
 * execa is imported only here, and only when a profile has nftables parts: its import alone
 * costs ~130 ms, more than a rule-mode `up`.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { NFT_TABLE } from '../model/constants.js';
import { WgsplitError } from '../errors.js';
import type { NftOp, ObservedNft } from '../plan/nftDiff.js';
import { nftTransaction } from '../plan/nftScript.js';
import { FakeNft } from './fakeNft.js';
import { findNft } from './nftPath.js';
import { parseNftJson } from './nftJson.js';
import { Nfnl, NfnlError } from './nfnetlink.js';
import { elementBatches, observeByNetlink, observeTable, type ElementChange } from './nftNetlink.js';

export function nftBinary(): string {
  const p = findNft();
  if (p) return p;
  throw new WgsplitError('ENVIRONMENT', 'a profile needs nftables, but `nft` is not installed (apt-get install nftables)');
}

async function run(args: string[], input?: string) {
  const { execa } = await import('execa');
  return execa(nftBinary(), args, { input, reject: false, stripFinalNewline: true, env: { LC_ALL: 'C' }, maxBuffer: 1 << 30 });
}

/**
 * An `nft -f -` started ahead, waiting for its script on stdin. LinuxKernel.apply starts
 * one while the routes are being written (a first `up` at 100k prefixes spends ~0.4 s
 * there): loading execa, forking and nft's own start-up (~20 ms) then no longer wait in
 * line before the nft phase. Never used, it is given an empty script and exits (nft -f of
 * nothing changes nothing).
 */
let standby: Promise<{ write(script: string): Promise<NftResult> }> | undefined;
type NftResult = Awaited<ReturnType<typeof run>>;

export function prestartNft(): void {
  if (standby) return;
  standby = (async () => {
    const { execa } = await import('execa');
    const p = execa(nftBinary(), ['-f', '-'], { stdin: 'pipe', reject: false, stripFinalNewline: true, env: { LC_ALL: 'C' }, maxBuffer: 1 << 30 });
    p.catch(() => undefined);
    return {
      write: async (script: string) => {
        p.stdin!.end(script);
        return (await p) as unknown as NftResult;
      },
    };
  })();
  standby.catch(() => undefined);
}

/** The standby nft, if any, finished without a script (the process is closing). */
export function stopStandbyNft(): void {
  const s = standby;
  standby = undefined;
  void s?.then((x) => x.write('')).catch(() => undefined);
}

async function runScript(script: string) {
  const s = standby;
  standby = undefined;
  if (s) {
    try {
      return await (await s).write(script);
    } catch {
      /* it could not start: as without one */
    }
  }
  return run(['-f', '-'], script);
}

const PERMISSION = 'permission denied: wgsplit needs root (CAP_NET_ADMIN) to read and change nftables';

function refused(stderr: string): WgsplitError | undefined {
  if (/Operation not permitted|Permission denied/.test(stderr)) return new WgsplitError('ENVIRONMENT', PERMISSION);
  return undefined;
}

const permission = (e: unknown) => e instanceof NfnlError && (e.errno === 1 || e.errno === 13);

export async function observeByNft(): Promise<ObservedNft> {
  const r = await run(['-j', 'list', 'table', 'inet', NFT_TABLE]);
  if (r.exitCode !== 0) {
    const stderr = String(r.stderr);
    if (/No such file or directory/.test(stderr)) return { present: false, chains: [], sets: [], rules: [] };
    throw refused(stderr) ?? new WgsplitError('ENVIRONMENT', `nft list table inet ${NFT_TABLE} failed: ${stderr.split('\n')[0]}`);
  }
  return parseNftJson(String(r.stdout));
}

export async function runNftScript(script: string): Promise<void> {
  if (!script) return;
  const r = await runScript(script);
  if (r.exitCode !== 0) {
    const stderr = String(r.stderr);
    const first = stderr.split('\n').find((l) => /Error/.test(l)) ?? stderr.split('\n')[0];
    throw refused(stderr) ?? new WgsplitError('KERNEL', `nft -f failed: ${first}`);
  }
}

interface Cache {
  gen: number;
  tag?: string;
  observed: ObservedNft;
}

/** The table, read and written; see the file comment. One per process (LinuxKernel). */
export class NftKernel {
  private nl?: Nfnl;
  private noNetlink = false;
  private cache?: Cache;
  private cacheLoaded = false;

  constructor(private readonly cachePath?: string) {}

  private socket(): Nfnl | undefined {
    if (this.noNetlink) return undefined;
    try {
      return (this.nl ??= new Nfnl());
    } catch {
      this.noNetlink = true;
      return undefined;
    }
  }

  /** Where nft(8) is; a clear error when it is missing (the caller checks before any write). */
  binary(): string {
    return nftBinary();
  }

  close(): void {
    stopStandbyNft();
    this.nl?.close();
    this.nl = undefined;
  }

  private loadCache(): Cache | undefined {
    if (!this.cacheLoaded && this.cachePath) {
      this.cacheLoaded = true;
      try {
        const c = JSON.parse(readFileSync(this.cachePath, 'utf8')) as Cache;
        if (typeof c.gen === 'number' && c.observed?.present) this.cache = c;
      } catch {
        /* none, or unreadable: read the kernel */
      }
    }
    return this.cache;
  }

  private saveCache(c: Cache | undefined): void {
    this.cache = c;
    this.cacheLoaded = true;
    if (!this.cachePath) return;
    try {
      if (!c) {
        if (existsSync(this.cachePath)) unlinkSync(this.cachePath);
        return;
      }
      mkdirSync(dirname(this.cachePath), { recursive: true, mode: 0o755 });
      const tmp = `${this.cachePath}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(c), { mode: 0o600 });
      renameSync(tmp, this.cachePath);
    } catch {
      /* a cache that cannot be written only costs time */
    }
  }

  async observe(): Promise<ObservedNft> {
    const nl = this.socket();
    if (!nl) return observeByNft();
    try {
      const gen = await nl.generation();
      const table = await observeTable(nl);
      if (!table.present) {
        this.saveCache(undefined);
        return { present: false, chains: [], sets: [], rules: [] };
      }
      const c = this.loadCache();
      if (c && c.gen === gen && c.tag !== undefined && c.tag === table.tag) return structuredClone(c.observed);
      const observed = await observeByNetlink(nl);
      this.saveCache({ gen, tag: observed.tag, observed });
      return structuredClone(observed);
    } catch (e) {
      if (permission(e)) throw new WgsplitError('ENVIRONMENT', PERMISSION, { cause: e });
      this.noNetlink = true;
      return observeByNft();
    }
  }

  /** One phase's nft operations (see the file comment for the order). */
  async apply(ops: NftOp[]): Promise<void> {
    const nl = this.socket();
    const before = nl ? await nl.generation().catch(() => undefined) : undefined;
    const cached = before !== undefined && this.loadCache()?.gen === before ? this.cache : undefined;
    // A table created now gets a fresh tag; one that exists keeps its own.
    const tableTag = `wgsplit ${randomBytes(6).toString('hex')}`;
    let commits = 0;
    const script = async (text: string) => {
      if (!text) return;
      await runNftScript(text);
      commits++;
    };
    const elements = ops.filter((o): o is Extract<NftOp, { kind: 'nft-element' }> => o.kind === 'nft-element');
    const plan = nl && elements.length && !ops.some((o) => o.op === 'replace') ? elementPlan(ops, elements, nl.maxBatchBytes()) : undefined;
    try {
      if (!nl || !plan) await script(nftTransaction(ops, { tableTag }));
      else {
        const created = ops.filter((o) => (o.kind === 'nft-table' || o.kind === 'nft-set' || o.kind === 'nft-chain') && o.op === 'add');
        await script(nftTransaction(created, { tableTag }));
        for (const b of plan) {
          try {
            await nl.batch(b);
          } catch (e) {
            if (permission(e)) throw new WgsplitError('ENVIRONMENT', PERMISSION, { cause: e });
            throw new WgsplitError('KERNEL', `nft set elements: ${(e as Error).message}`, { cause: e });
          }
          commits++;
        }
        await script(nftTransaction(ops.filter((o) => o.kind !== 'nft-element' && !created.includes(o))));
      }
    } catch (e) {
      this.saveCache(undefined);
      throw e;
    }
    await this.afterApply(ops, cached, before, commits, tableTag);
  }

  /**
   * Keep the cache valid without dumping every element again: when the generation moved by
   * exactly our own commits, nobody else wrote in between, so the table is the cached one
   * with our operations applied. Rules (their new handles) and declarations are read back,
   * the elements are taken from that model.
   */
  private async afterApply(ops: NftOp[], cached: Cache | undefined, before: number | undefined, commits: number, tableTag: string): Promise<void> {
    const nl = this.socket();
    if (!nl || before === undefined) return this.saveCache(undefined);
    try {
      const gen = await nl.generation();
      const creates = ops.some((o) => o.kind === 'nft-table' && o.op === 'add');
      const base = cached?.observed ?? (creates ? { present: false, chains: [], sets: [], rules: [] } : undefined);
      if (gen !== before + commits || !base) return this.saveCache(undefined);
      const model = FakeNft.from(base);
      model.apply(ops);
      const known = model.observe();
      const elements = new Map(known.sets.map((s) => [s.name, s.elements]));
      const observed = await observeByNetlink(nl, (name) => elements.get(name));
      if (!observed.present) return this.saveCache(undefined);
      if (creates && observed.tag !== tableTag) return this.saveCache(undefined);
      if (gen !== (await nl.generation())) return this.saveCache(undefined);
      this.saveCache({ gen, tag: observed.tag, observed });
    } catch {
      this.saveCache(undefined);
    }
  }
}

/** The element batches, or undefined when nft(8) must do them (see the file comment). */
function elementPlan(ops: NftOp[], elements: Extract<NftOp, { kind: 'nft-element' }>[], maxBytes: number) {
  const newSets = new Set(ops.filter((o) => o.kind === 'nft-set' && o.op === 'add').map((o) => (o as { set: { name: string } }).set.name));
  const group = (which: (set: string) => boolean): ElementChange[] => {
    const m = new Map<string, ElementChange>();
    for (const o of elements) {
      if (!which(o.set)) continue;
      const k = `${o.op} ${o.set}`;
      if (!m.has(k)) m.set(k, { set: o.set, op: o.op, interval: !!o.interval, elements: [] });
      m.get(k)!.elements.push(o.element);
    }
    // Deletions first: an added prefix may overlap one that is going.
    return [...m.values()].sort((a, b) => (a.op === b.op ? 0 : a.op === 'delete' ? -1 : 1));
  };
  const live = elementBatches(group((s) => !newSets.has(s)), maxBytes);
  const fresh = elementBatches(group((s) => newSets.has(s)), maxBytes);
  if (!live || !fresh || live.length > 1) return undefined;
  return [...live, ...fresh];
}
