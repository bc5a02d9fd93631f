/**
 * cgroup v2 paths as wgsplit uses them. Pure.
 *
 * A path is relative to the cgroup v2 root, exactly as `/proc/PID/cgroup` shows it after
 * `0::` (without the leading `/`): `system.slice/transmission-daemon.service`. nft's
 * `socket cgroupv2 level N "PATH"` resolves PATH under /sys/fs/cgroup (libnftables prepends
 * it) to the cgroup's id when the rule is loaded, and matches a socket whose cgroup's
 * ancestor at depth N is that cgroup, so a rule matches the cgroup's whole subtree and N is
 * the path's number of components. On a hybrid hierarchy v2 is mounted at
 * /sys/fs/cgroup/unified, so the path nft needs starts with `unified/`.
 *
 * The id of a cgroup v2 is the inode number of its directory (kernfs node id): a cgroup
 * removed and created again (every systemd unit restart) gets a new one, and a loaded rule
 * keeps matching the old id, i.e. nothing.
 */

/** Where wgsplit's own cgroups live, relative to the v2 root (systemd: `wgsplit.slice`). */
export const DEFAULT_OWN_CGROUP_BASE = 'wgsplit.slice';

export type CgroupPathResult = { ok: true; path: string } | { ok: false; reason: string };

/**
 * A cgroup path as written in a profile (or given to `explain --app`): `/a/b`, `a/b` and
 * `a/b/` are the same cgroup. The root is refused (it holds every process: leaving out
 * `apps` says that), and so are `.`/`..` and empty components, and characters an nft
 * string cannot carry.
 */
export function parseCgroupPath(text: string): CgroupPathResult {
  const path = text.trim().replace(/^\/+/, '').replace(/\/+$/, '');
  if (!path) return { ok: false, reason: `"${text}" is the root cgroup, which holds every process; list cgroups below it (as /proc/PID/cgroup shows them after "0::")` };
  const parts = path.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return { ok: false, reason: `"${text}" is not a cgroup path: empty, "." and ".." components are not allowed` };
  if (/[^\x21-\x7e]|["\\]/.test(path)) return { ok: false, reason: `"${text}" contains a space, quote, backslash or non-ASCII character, which nft cannot match` };
  if (path.length > 4000) return { ok: false, reason: `"${text.slice(0, 40)}..." is longer than a path may be` };
  return { ok: true, path };
}

/** Depth below the root: nft's `level`. */
export const cgroupLevel = (path: string): number => path.split('/').length;

/** Is `path` the cgroup `ancestor` or inside its subtree? */
export const inCgroupSubtree = (path: string, ancestor: string): boolean => path === ancestor || path.startsWith(ancestor + '/');

/** The cgroup v2 path of a process from the text of /proc/PID/cgroup (the `0::` line). */
export function parseProcCgroup(text: string): string | undefined {
  const line = text.split('\n').find((l) => l.startsWith('0::'));
  if (line === undefined) return undefined;
  return line.slice(3).replace(/^\/+/, '').replace(/\/+$/, '');
}

/**
 * Where cgroup v2 is mounted, from /proc/self/mountinfo (proc(5): field 5 is the mount
 * point; the filesystem type follows the ` - ` separator). The mount nft can use is the
 * one under /sys/fs/cgroup: unified (`/sys/fs/cgroup`) or hybrid (`/sys/fs/cgroup/unified`).
 */
export function cgroup2Mount(mountinfo: string): string | undefined {
  const mounts: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!right || right.split(' ')[0] !== 'cgroup2') continue;
    const point = left.split(' ')[4];
    if (point) mounts.push(point.replace(/\\040/g, ' '));
  }
  return mounts.find((m) => m === '/sys/fs/cgroup') ?? mounts.find((m) => m.startsWith('/sys/fs/cgroup/')) ?? mounts[0];
}

/** The prefix nft's paths need for a v2 mount point ('' or 'unified/'), or undefined if nft cannot reach it. */
export function nftCgroupPrefix(mount: string): string | undefined {
  if (mount === '/sys/fs/cgroup') return '';
  if (mount.startsWith('/sys/fs/cgroup/')) return mount.slice('/sys/fs/cgroup/'.length) + '/';
  return undefined;
}

/** A cgroup's name component for a profile: systemd reads `-` in a slice name as nesting. */
export function ownSliceName(nftIdent: string): string {
  return `wgsplit-${nftIdent}.slice`;
}

/** Is `version` (e.g. "5.13.0-1-amd64", "v1.0.6") at least `min` ([5, 13])? */
export function versionAtLeast(version: string, min: number[]): boolean {
  const got = (/(\d+(?:\.\d+)*)/.exec(version)?.[1] ?? '0').split('.').map(Number);
  for (let i = 0; i < min.length; i++) {
    const g = got[i] ?? 0;
    if (g !== min[i]) return g > min[i];
  }
  return true;
}
