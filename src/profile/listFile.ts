/**
 * Prefix list files (`include_files` / `exclude_files`): one prefix per line, `#` starts a
 * comment, blank lines ignored. Pure: load.ts reads the file.
 *
 * Country lists run to 100k lines, so the text is walked by index and a canonical IPv4
 * line (`a.b.c.d/len`, the usual case) becomes a key4 number without a string, an object
 * or a BigInt; anything else (IPv6, odd spacing, errors) takes parsePrefix, the one
 * grammar, so both paths accept and refuse exactly the same lines (test/unit/listFile).
 */
import type { Problem } from '../errors.js';
import { key4, parseIPv4, parsePrefix } from '../model/prefix.js';
import type { PackedPrefixes } from '../model/prefixList.js';
import type { Prefix } from '../model/prefix.js';
import type { PrefixSource } from './types.js';

/**
 * A canonical IPv4 prefix in text[s, e) as key4, or -1 for anything else (parsePrefix then
 * decides): octets 0-255 without leading zeros, an optional `/len` of 1-2 digits 0-32, no
 * host bits. Never accepts what parsePrefix refuses.
 */
function fastKey4(text: string, s: number, e: number): number {
  let i = s;
  while (i < e && text.charCodeAt(i) !== 47) i++;
  const value = parseIPv4(text, s, i);
  if (value < 0) return -1;
  let len = 32;
  if (i < e) {
    if (text.charCodeAt(i) !== 47 || e - i < 2 || e - i > 3) return -1;
    const d0 = text.charCodeAt(i + 1) - 48;
    const d1 = e - i === 3 ? text.charCodeAt(i + 2) - 48 : 0;
    if (d0 < 0 || d0 > 9 || d1 < 0 || d1 > 9) return -1;
    len = e - i === 3 ? d0 * 10 + d1 : d0;
    if (len > 32 || (e - i === 3 && d0 === 0)) return -1;
  }
  if (len < 32 && value % 2 ** (32 - len) !== 0) return -1; // host bits: parsePrefix says so
  return key4(value, len);
}

const isSpace = (c: number) => c === 32 || c === 9 || c === 13 || c === 11 || c === 12;

export function parseListFile(file: string, text: string, maxProblems = 20): { prefixes: PackedPrefixes; problems: Problem[] } {
  // Upper bound of lines: one key per line at most.
  let lines = 1;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
  const keys = new Float64Array(lines);
  let n = 0;
  const v6: Prefix[] = [];
  const problems: Problem[] = [];
  let lineNo = 0;
  let extra = 0;
  for (let start = 0; start <= text.length; ) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    lineNo++;
    // The body: up to a `#`, ASCII blanks trimmed (other whitespace: the general path).
    let e = start;
    while (e < end && text.charCodeAt(e) !== 35) e++; // not indexOf: it would search past the line
    let s = start;
    while (s < e && isSpace(text.charCodeAt(s))) s++;
    while (e > s && isSpace(text.charCodeAt(e - 1))) e--;
    if (s < e) {
      const k = fastKey4(text, s, e);
      if (k >= 0) keys[n++] = k;
      else {
        const raw = text.slice(start, end);
        const hash = raw.indexOf('#');
        const body = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
        if (body) {
          const r = parsePrefix(body);
          if (r.ok) {
            if (r.prefix.family === 4) keys[n++] = key4(Number(r.prefix.addr), r.prefix.len);
            else v6.push(r.prefix);
          } else if (problems.length < maxProblems) problems.push({ file, line: lineNo, col: raw.indexOf(body) + 1, message: r.reason });
          else extra++;
        }
      }
    }
    start = end + 1;
  }
  if (extra) problems.push({ file, line: lineNo, col: 1, message: `... and ${extra} more bad line${extra > 1 ? 's' : ''}` });
  return { prefixes: { keys4: keys.slice(0, n), v6 }, problems };
}

/** A list file's prefixes as a profile source: packed for compile, as objects on demand (explain). */
export function listSource(text: string, packed: () => PackedPrefixes): PrefixSource {
  let objects: Prefix[] | undefined;
  return {
    text,
    get packed() {
      return packed();
    },
    get prefixes(): Prefix[] {
      if (objects) return objects;
      const p = packed();
      return (objects = [...Array.from(p.keys4, (k): Prefix => ({ family: 4, addr: BigInt((k - (k % 64)) / 64), len: k % 64 })), ...p.v6]);
    },
  };
}
