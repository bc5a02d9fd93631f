/**
 * Checks that need every profile at once: each profile owns its table (wgsplit finds its
 * state by table) and its priority (two profiles at one priority would be ordered by
 * insertion time, which nobody can see in a file).
 */
import type { Problem } from '../errors.js';
import type { Family } from '../model/prefix.js';
import { locateValue, locate } from './locate.js';
import type { Profile } from './types.js';
import { hasDomains, usesMarks } from './marks.js';
import { hasApps } from './apps.js';
import { isGateway } from './from.js';

export function validateSet(profiles: Profile[], texts: Map<string, string>): Problem[] {
  const problems: Problem[] = [];
  const where = (p: Profile, key: string) => {
    const text = texts.get(p.file) ?? '';
    const pos = new RegExp(`^\\s*${key}\\s*=`, 'm').test(text) ? locateValue(text, key) : locate(text);
    return pos;
  };
  for (const key of ['table', 'priority'] as const) {
    const owner = new Map<number, Profile>();
    for (const p of profiles) {
      const v = p[key];
      const first = owner.get(v);
      if (first) {
        const pos = where(p, key);
        const fpos = where(first, key);
        const defaulted = !new RegExp(`^\\s*${key}\\s*=`, 'm').test(texts.get(p.file) ?? '');
        problems.push({
          file: p.file,
          line: pos.line,
          col: pos.col,
          message: `${key} ${v}${defaulted ? ' (the default)' : ''} is also used by profile "${first.name}" (${first.file}:${fpos.line}:${fpos.col}); give each profile its own ${key}`,
        });
      } else owner.set(v, p);
    }
  }
  // Two marking profiles must not share a mark (explicit fwmark mode and nft features: auto
  // picks fwmark at run time, and compile reports a clash then).
  const marks = new Map<number, Profile>();
  for (const p of profiles.filter(usesMarks)) {
    const first = marks.get(p.fwmark);
    if (first) {
      const text = texts.get(p.file) ?? '';
      const key = /^\s*fwmark\s*=/m.test(text)
        ? 'fwmark'
        : /^\s*mode\s*=/m.test(text) || (!hasApps(p) && !hasDomains(p) && !isGateway(p.from) && !p.proxy)
          ? 'mode'
          : (['apps', 'exclude_apps', 'include_domains', 'exclude_domains', 'from', 'proxy_port'].find((k) => new RegExp(`^\\s*${k}\\s*=`, 'm').test(text)) ?? 'mode');
      const pos = where(p, key);
      problems.push({ file: p.file, line: pos.line, col: pos.col, message: `fwmark 0x${p.fwmark.toString(16)} is also used by profile "${first.name}"; give each profile that marks packets (fwmark mode, apps, include_domains / exclude_domains, a gateway from) or proxy profile its own fwmark` });
    } else marks.set(p.fwmark, p);
  }
  return problems;
}

/** Which families a profile covers, given the families its interface has addresses in. */
export function profileFamilies(p: Profile, ifaceFamilies: Family[]): Family[] {
  return p.families ?? ifaceFamilies;
}
