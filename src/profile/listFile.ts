/**
 * Prefix list files (`include_files` / `exclude_files`): one prefix per line, `#` starts a
 * comment, blank lines ignored. Pure: load.ts reads the file.
 *
 * Country lists run to 100k lines, so the text is walked by index and a canonical IPv4
 * line (`a.b.c.d/len`, the usual case) becomes a key4 number without a string, an object
 * or a BigInt; anything else (IPv6, odd spacing, errors) takes parsePrefix, the one
 * grammar, so both paths accept and refuse exactly the same lines (test/unit/prefixList.test.ts
 * compares them on random lines).
 */
import type { Problem } from '../errors.js';
import { key4, parsePrefix } from '../model/prefix.js';
import type { PackedPrefixes } from '../model/prefixList.js';
import type { Prefix } from '../model/prefix.js';
import type { PrefixSource } from './types.js';

/** Network masks by prefix length (host bits of a canonical prefix are zero). */
const MASK4 = Uint32Array.from({ length: 33 }, (_, l) => (l === 0 ? 0 : (0xffffffff << (32 - l)) >>> 0));

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
  // One loop, no call per line: this runs 100k times on a country list, mostly before the
  // optimising compiler has seen it (cold, the version with helper calls took ~45 ms here,
  // this one ~25 ms).
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
      // The canonical case, in place: four octets 0-255 without leading zeros (node's
      // isIPv4, as prefix.ts parseIPv4), an optional `/len` of 1-2 digits 0-32 (no leading
      // zero), no host bits. Anything else takes parsePrefix, which never accepts less.
      let i = s;
      let addr = 0;
      let ok = true;
      for (let octets = 0; octets < 4 && ok; octets++) {
        let v = 0;
        let digits = 0;
        let c = i < e ? text.charCodeAt(i) : -1;
        while (c >= 48 && c <= 57) {
          if (digits > 0 && v === 0) ok = false; // leading zero
          v = v * 10 + (c - 48);
          digits++;
          c = ++i < e ? text.charCodeAt(i) : -1;
        }
        if (digits === 0 || v > 255) ok = false;
        addr = addr * 256 + v;
        if (octets < 3) {
          if (c !== 46) ok = false;
          i++;
        }
      }
      let len = 32;
      if (ok && i < e) {
        if (text.charCodeAt(i) !== 47 || e - i < 2 || e - i > 3) ok = false;
        else {
          const d0 = text.charCodeAt(i + 1) - 48;
          const d1 = e - i === 3 ? text.charCodeAt(i + 2) - 48 : 0;
          if (d0 < 0 || d0 > 9 || d1 < 0 || d1 > 9 || (e - i === 3 && d0 === 0)) ok = false;
          else len = e - i === 3 ? d0 * 10 + d1 : d0;
          if (len > 32) ok = false;
        }
      }
      if (ok && len < 32 && (addr & ~MASK4[len]) >>> 0 !== 0) ok = false; // host bits: parsePrefix says so
      if (ok) keys[n++] = key4(addr, len);
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
