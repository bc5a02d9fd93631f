/** CPU time and memory of a process (and its children) from /proc. */
import { readFileSync } from 'node:fs';
import { run } from './ns.js';

let clkTck: number | undefined;

export async function clockTicks(): Promise<number> {
  clkTck ??= Number(String((await run('getconf', ['CLK_TCK'])).stdout).trim()) || 100;
  return clkTck;
}

/** utime + stime in clock ticks (fields 14 and 15 of /proc/PID/stat). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** cutime + cstime: CPU of children that exited and were waited for (e.g. `wg show` runs). */
export function reapedChildTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[13]) + Number(f[14]);
}

/** VmRSS in KiB. */
export function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

export function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

export interface ProcSample {
  ticks: number;
  reapedTicks: number;
  rssKiB: number;
  /** direct children: comm -> ticks / rss */
  children: { pid: number; comm: string; ticks: number; rssKiB: number }[];
}

export function sample(pid: number): ProcSample {
  return {
    ticks: cpuTicks(pid),
    reapedTicks: reapedChildTicks(pid),
    rssKiB: rssKiB(pid),
    children: children(pid).map((c) => {
      try {
        return { pid: c, comm: comm(c), ticks: cpuTicks(c), rssKiB: rssKiB(c) };
      } catch {
        return { pid: c, comm: comm(c), ticks: NaN, rssKiB: NaN };
      }
    }),
  };
}
