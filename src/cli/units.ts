/** Numbers for people: traffic counters in binary units on a terminal, exact otherwise. */
import type { Counter } from '../kernel/nftCounters.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function bytesText(n: number): string {
  let v = n;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${UNITS[i]}`;
}

export function countText(n: number): string {
  if (n < 1000) return String(n);
  for (const [d, s] of [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']] as const) if (n >= d) return `${n / d < 10 ? (n / d).toFixed(1) : Math.round(n / d)}${s}`;
  return String(n);
}

/** `out 1.2 MiB (830 packets), in 45 MiB (31k packets)`; exact numbers when not for a person at a terminal. */
export function trafficText(c: { out?: Counter; in?: Counter }, human: boolean): string {
  const one = (what: string, x: Counter | undefined) =>
    x === undefined ? `${what} (counter missing; see wgsplit diff)` : human ? `${what} ${bytesText(x.bytes)} (${countText(x.packets)} packets)` : `${what} ${x.bytes} bytes (${x.packets} packets)`;
  return `${one('out', c.out)}, ${one('in', c.in)}`;
}
