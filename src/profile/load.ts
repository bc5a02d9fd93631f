/**
 * The only file reads of profiles: list `*.toml` directly in the config directory, refuse
 * a directory or file that someone other than root could change (it decides where root's
 * traffic goes; the same rule as sshd's StrictModes), parse and validate everything, and
 * report every problem at once.
 */
import { createHash } from 'node:crypto';
import { readdirSync, statSync, type Stats } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { locate } from './locate.js';
import { listSource, parseListFile } from './listFile.js';
import { WgsplitError, type Problem } from '../errors.js';
import { parseProfile } from './parse.js';
import type { PackedPrefixes } from '../model/prefixList.js';
import type { Profile } from './types.js';
import { validateSet } from './validateSet.js';
import { errnoText, readRegularFile } from './readText.js';
import { cachedResolver, type UserResolver } from './users.js';

export interface LoadedProfiles {
  dir: string;
  profiles: Profile[];
}

function permissionProblem(path: string, st: Stats, what: string): string | undefined {
  if (st.uid !== 0) return `${what} ${path} is owned by uid ${st.uid}, not root: refusing it, since it decides where root's traffic goes (chown root ${path})`;
  if (st.mode & 0o022)
    return `${what} ${path} is writable by ${st.mode & 0o020 ? 'group' : 'others'} (mode ${(st.mode & 0o777).toString(8)}): refusing it (chmod go-w ${path})`;
  return undefined;
}

const asRoot = () => typeof process.getuid !== 'function' || process.getuid() === 0;

/**
 * Root-only ownership check; skipped when not running as root (check by a normal user).
 * A path that cannot be stat'ed (a dangling symlink) is left to the read, which reports it.
 */
function checkPerms(path: string, what: string, problems: string[], st?: Stats): void {
  if (!asRoot()) return;
  try {
    st ??= statSync(path);
  } catch {
    return;
  }
  const p = permissionProblem(path, st, what);
  if (p) problems.push(p);
}

export interface LoadOptions {
  /**
   * Parse list files only when their prefixes are first used. Their bytes are still read
   * and hashed (the profile's digest), so a plan-cache hit (reconcile/planCache.ts: same
   * digest as a successful apply, hence a list that parsed cleanly then) never parses
   * 100k lines; on a miss, compile's first use parses and a bad line throws the usual
   * PROFILE problems before anything is written. Off for `check`, `down` and the watcher,
   * which must see every problem when loading.
   */
  lazyLists?: boolean;
  /** how user names in `uids` / `bypass_uids` resolve (default: getent passwd, cached) */
  resolveUser?: UserResolver;
}

export function loadProfileDir(dir: string, opts: LoadOptions = {}): LoadedProfiles {
  const abs = resolve(dir);
  let entries: string[];
  try {
    if (!statSync(abs).isDirectory()) throw new WgsplitError('ENVIRONMENT', `config path ${abs} is not a directory`);
    entries = readdirSync(abs).filter((f) => f.endsWith('.toml')).sort();
  } catch (e) {
    if (e instanceof WgsplitError) throw e;
    throw new WgsplitError('ENVIRONMENT', `cannot read config directory ${abs}: ${errnoText(e)}; create it and add a profile (see wgsplit.toml(5)), or pass --config DIR`, { cause: e });
  }
  const perms: string[] = [];
  checkPerms(abs, 'config directory', perms);
  const files = entries.map((f) => join(abs, f));
  for (const f of files) checkPerms(f, 'profile', perms);
  if (perms.length) throw new WgsplitError('CONFIG_PERMS', perms.join('\n'));
  return { dir: abs, profiles: loadProfileFiles(files, opts) };
}

/** Parse and cross-validate the given files; throws PROFILE with every problem. */
/** Read a profile's list files (relative to its own directory) into include / exclude. */
function readLists(p: Profile, text: string, problems: Problem[], lazy: boolean): void {
  const digest = createHash('sha1').update(text);
  for (const [key, files, into] of [
    ['include_files', p.includeFiles, p.include],
    ['exclude_files', p.excludeFiles, p.exclude],
  ] as const) {
    files.forEach((name, i) => {
      const path = isAbsolute(name) ? name : join(dirname(p.file), name);
      const read = readRegularFile(path);
      if (!read.ok) {
        const pos = locate(text, key, i);
        problems.push({ file: p.file, line: pos.line, col: pos.col, message: `${key}[${i}]: cannot read ${path}: ${read.reason}` });
        return;
      }
      const body = read.text;
      const perms: string[] = [];
      checkPerms(path, 'list file', perms, read.stats);
      for (const m of perms) {
        const pos = locate(text, key, i);
        problems.push({ file: p.file, line: pos.line, col: pos.col, message: m });
      }
      digest.update(`\0${path}\0`).update(body);
      if (lazy) {
        into.push(lazyList(`file ${name}`, path, body));
        return;
      }
      const r = parseListFile(path, body);
      problems.push(...r.problems);
      into.push(listSource(`file ${name}`, () => r.prefixes));
    });
  }
  // Names in `uids` resolve at load: an LDAP user whose uid changed changes the compile.
  digest.update(`\0uids\0${JSON.stringify(p.uids)}`);
  if (p.proxy) digest.update(`\0bypass_uids\0${JSON.stringify(p.proxy.bypassUids)}`);
  p.digest = digest.digest('hex');
}

/** A list source whose prefixes are parsed on first use (see LoadOptions.lazyLists). */
function lazyList(text: string, path: string, body: string): Profile['include'][number] {
  let packed: PackedPrefixes | undefined;
  return listSource(text, () => {
    if (packed) return packed;
    const r = parseListFile(path, body);
    if (r.problems.length) throw new WgsplitError('PROFILE', `${r.problems.length} problem${r.problems.length > 1 ? 's' : ''} in profiles`, { problems: r.problems });
    return (packed = r.prefixes);
  });
}

export function loadProfileFiles(files: string[], opts: { checkPerms?: boolean } & LoadOptions = {}): Profile[] {
  const resolveUser = opts.resolveUser ?? cachedResolver();
  const problems: Problem[] = [];
  const texts = new Map<string, string>();
  const profiles: Profile[] = [];
  for (const file of files) {
    const read = readRegularFile(file);
    if (!read.ok) {
      problems.push({ file, line: 1, col: 1, message: `cannot read: ${read.reason}` });
      continue;
    }
    const text = read.text;
    if (opts.checkPerms) {
      // On what was read (fstat of the open file), so the check and the read see one file.
      const perms: string[] = [];
      checkPerms(file, 'profile', perms, read.stats);
      for (const m of perms) problems.push({ file, line: 1, col: 1, message: m });
    }
    texts.set(file, text);
    const r = parseProfile(file, text, { resolveUser });
    problems.push(...r.problems);
    if (r.profile) {
      readLists(r.profile, text, problems, !!opts.lazyLists);
      profiles.push(r.profile);
    }
  }
  problems.push(...validateSet(profiles, texts));
  if (problems.length) {
    throw new WgsplitError('PROFILE', `${problems.length} problem${problems.length > 1 ? 's' : ''} in profiles`, { problems });
  }
  return profiles;
}
