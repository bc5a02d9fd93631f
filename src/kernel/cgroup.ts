/**
 * cgroup v2 on this machine: where it is mounted, which cgroups exist and their ids, and
 * whether the kernel and nft can match them (`socket cgroupv2`: Linux 5.13+, nft 0.9.9+).
 * The only file that reads cgroupfs; `wgsplit exec` (cli/commands/exec.ts) creates and joins
 * wgsplit's own cgroups through it.
 */
import { childProcess } from '../childProcess.js';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import path from 'node:path';
import type { CgroupFacts } from '../compile/facts.js';
import { WgsplitError } from '../errors.js';
import { cgroup2Mount, DEFAULT_OWN_CGROUP_BASE, nftCgroupPrefix, parseCgroupPath, parseProcCgroup, versionAtLeast } from '../model/cgroup.js';
import { nftBinary } from './nft.js';

/** The base of wgsplit's own cgroups; WGSPLIT_CGROUP_BASE moves it (tests use names of their own). */
export function ownCgroupBase(env: NodeJS.ProcessEnv = process.env): string {
  const v = env.WGSPLIT_CGROUP_BASE;
  if (v === undefined || v === '') return DEFAULT_OWN_CGROUP_BASE;
  const r = parseCgroupPath(v);
  if (!r.ok) throw new WgsplitError('ENVIRONMENT', `WGSPLIT_CGROUP_BASE: ${r.reason}`);
  return r.path;
}

export interface Cgroup2Mount {
  /** where cgroup v2 is mounted, e.g. /sys/fs/cgroup/unified */
  mount?: string;
  /** what nft's paths start with ('' or 'unified/'), undefined when nft cannot reach the mount */
  nftPrefix?: string;
}

export function cgroup2(): Cgroup2Mount {
  let info = '';
  try {
    info = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return {};
  }
  const mount = cgroup2Mount(info);
  return { mount, nftPrefix: mount === undefined ? undefined : nftCgroupPrefix(mount) };
}

let toolsChecked: string | undefined | null = null;

/** What the kernel and nft lack for `socket cgroupv2`, or undefined (checked once per process). */
function missingTools(): string | undefined {
  if (toolsChecked !== null) return toolsChecked;
  const problems: string[] = [];
  if (!versionAtLeast(release(), [5, 13])) problems.push(`Linux 5.13 or later (this is ${release()})`);
  try {
    const v = childProcess().execFileSync(nftBinary(), ['--version'], { encoding: 'utf8', env: { LC_ALL: 'C' } }).trim();
    if (!versionAtLeast(v.replace(/^nftables\s+/, ''), [0, 9, 9])) problems.push(`nft 0.9.9 or later (this is ${v})`);
  } catch (e) {
    problems.push(e instanceof WgsplitError ? 'nft (apt-get install nftables)' : `a working nft (nft --version failed: ${(e as Error).message.split('\n')[0]})`);
  }
  toolsChecked = problems.length ? `socket cgroupv2 matching needs ${problems.join(' and ')}` : undefined;
  return toolsChecked;
}

/** The id of a cgroup v2: the inode number of its directory. */
function cgroupId(dir: string): number | undefined {
  try {
    const st = statSync(dir);
    return st.isDirectory() ? st.ino : undefined;
  } catch {
    return undefined;
  }
}

export function cgroupFacts(paths: string[]): CgroupFacts {
  const m = cgroup2();
  const ownBase = ownCgroupBase();
  if (!m.mount) return { nftPrefix: '', ids: {}, ownBase, unavailable: 'cgroup v2 is not mounted (no cgroup2 line in /proc/self/mountinfo; under `ip netns exec`, which mounts a fresh /sys, use `nsenter --net=/run/netns/NAME` instead)' };
  if (m.nftPrefix === undefined) return { nftPrefix: '', ids: {}, ownBase, unavailable: `cgroup v2 is mounted at ${m.mount}, but nft resolves cgroup paths under /sys/fs/cgroup` };
  const ids: Record<string, number> = {};
  for (const p of paths) {
    const id = cgroupId(path.join(m.mount, p));
    if (id !== undefined) ids[p] = id;
  }
  return { nftPrefix: m.nftPrefix, ids, ownBase, unavailable: missingTools() };
}

function mountOrThrow(): string {
  const m = cgroup2();
  if (!m.mount) throw new WgsplitError('ENVIRONMENT', 'cgroup v2 is not mounted (no cgroup2 line in /proc/self/mountinfo)');
  return m.mount;
}

/** Create a cgroup (and its parents) under the v2 mount; an existing one is kept as it is. */
export function ensureCgroup(cgroup: string): void {
  try {
    mkdirSync(path.join(mountOrThrow(), cgroup), { recursive: true });
  } catch (e) {
    if (e instanceof WgsplitError) throw e;
    throw new WgsplitError('ENVIRONMENT', `cannot create cgroup ${cgroup}: ${(e as Error).message}`);
  }
}

/** Move a process into a cgroup (cgroup-v2.rst: write the PID to cgroup.procs). */
export function joinCgroup(cgroup: string, pid: number = process.pid): void {
  try {
    writeFileSync(path.join(mountOrThrow(), cgroup, 'cgroup.procs'), `${pid}\n`);
  } catch (e) {
    if (e instanceof WgsplitError) throw e;
    throw new WgsplitError('ENVIRONMENT', `cannot move process ${pid} into cgroup ${cgroup}: ${(e as Error).message}`);
  }
}

/** A process's cgroup v2 path (/proc/PID/cgroup after `0::`). */
export function procCgroup(pid: number | 'self'): string | undefined {
  try {
    return parseProcCgroup(readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** A process's effective uid (proc(5): the second field of the Uid: line of /proc/PID/status). */
export function procEuid(pid: number): number | undefined {
  try {
    const m = /^Uid:\s+\d+\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
