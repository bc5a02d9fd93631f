/**
 * include_domains / exclude_domains: names as dnsmasq's `nftset=/NAME/...` takes them. Pure.
 *
 * A name covers its subdomains (dnsmasq(8) --nftset: "domain and all subdomains"), so a
 * wildcard is never needed and `*.` is refused with that hint. The characters that separate
 * fields in dnsmasq's option (`/`, `#`, `,`) or in its config file (spaces) can never reach
 * the drop-in: only LDH labels (RFC 1123; `_` too, it occurs in real names), each 1-63
 * characters, 253 in all. Names are lower-cased (DNS compares names case-insensitively) and
 * a trailing dot (the root) is dropped, so `Example.COM.` and `example.com` are one name.
 */
import { parseAddress } from '../model/prefix.js';

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

export type DomainCheck = { ok: true; name: string } | { ok: false; reason: string };

export function checkDomain(text: string): DomainCheck {
  const t = text.trim();
  if (!t) return { ok: false, reason: 'empty name' };
  if (t.startsWith('*.')) return { ok: false, reason: `"${text}": no wildcards; a name already covers its subdomains, write "${t.slice(2)}"` };
  if (/[^\x21-\x7e]/.test(t)) return { ok: false, reason: `"${text}" has spaces or non-ASCII characters (write an internationalised name in its ASCII form, xn--...)` };
  if (parseAddress(t) || t.includes('/')) return { ok: false, reason: `"${text}" is an address or prefix, not a name; put it in include or exclude` };
  const name = t.toLowerCase().replace(/\.$/, '');
  if (name.length > 253) return { ok: false, reason: `"${text}" is longer than 253 characters` };
  const bad = name.split('.').find((l) => !LABEL.test(l));
  if (bad !== undefined) return { ok: false, reason: `"${text}" is not a domain name (${bad === '' ? 'empty label' : `label "${bad}"`}: letters, digits, "-" and "_", 1-63 characters, not starting or ending with "-")` };
  return { ok: true, name };
}

/**
 * Both lists of one profile; `at(message, key, index)` reports with the element's position.
 * A name twice in one list, or in both lists, is an error: which one was meant?
 */
export function parseDomainLists(include: string[] | undefined, exclude: string[] | undefined, at: (m: string, key: string, index?: number) => void): { include: string[]; exclude: string[] } {
  const out = { include: [] as string[], exclude: [] as string[] };
  const seen = new Map<string, string>();
  for (const [key, list, into] of [
    ['include_domains', include, out.include],
    ['exclude_domains', exclude, out.exclude],
  ] as const) {
    if (list === undefined) continue;
    if (list.length === 0) at(`${key} is empty: list at least one name (or remove the key)`, key);
    list.forEach((text, i) => {
      const r = checkDomain(text);
      if (!r.ok) return at(`${key}[${i}]: ${r.reason}`, key, i);
      const first = seen.get(r.name);
      if (first === key) return at(`${key}[${i}]: "${r.name}" is listed twice`, key, i);
      if (first) return at(`${key}[${i}]: "${r.name}" is also in ${first}; a name is either diverted or kept direct`, key, i);
      seen.set(r.name, key);
      into.push(r.name);
    });
  }
  return out;
}
