/**
 * User names in `uids` (and `explain --uid`), resolved through NSS with getent(1):
 * `getent passwd NAME` asks every source in nsswitch.conf (files, LDAP, sssd,
 * systemd-homed's userdb), which reading /etc/passwd would not. The output is one passwd(5)
 * line, `name:password:UID:GID:gecos:home:shell`; exit status 2 means the name is unknown.
 * This is I/O: load.ts hands it to the pure parser (parse.ts takes any resolver).
 */
import { childProcess } from '../childProcess.js';

/** A uid, `undefined` for an unknown name, or why the lookup itself failed. */
export type UserLookup = { uid: number } | { error: string } | undefined;
export type UserResolver = (name: string) => UserLookup;

/** A directory service that does not answer must not hang `wgsplit up` under wg-quick. */
const GETENT_TIMEOUT_MS = 5000;

export function getentUser(name: string): UserLookup {
  // `--` so a name can never be read as an option; names starting with "-" are refused earlier.
  const r = childProcess().spawnSync('getent', ['passwd', '--', name], { encoding: 'utf8', timeout: GETENT_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { error: 'getent(1) is not installed (Debian: libc-bin); write the numeric uid instead' };
    if (code === 'ETIMEDOUT') return { error: `getent passwd did not answer within ${GETENT_TIMEOUT_MS / 1000} s (is the directory service reachable?)` };
    return { error: `getent passwd failed: ${code ?? r.error.message}` };
  }
  if (r.status === 2) return undefined;
  if (r.status !== 0) return { error: `getent passwd failed (exit status ${r.status ?? r.signal})` };
  const fields = r.stdout.split('\n')[0].split(':');
  const uid = Number(fields[2]);
  if (fields.length < 7 || !/^\d+$/.test(fields[2] ?? '') || uid > 4294967294) return { error: `getent passwd printed something that is not a passwd(5) line: ${JSON.stringify(r.stdout.slice(0, 80))}` };
  return { uid };
}

/** One lookup per name per load: a profile set naming "alice" five times asks once. */
export function cachedResolver(resolve: UserResolver = getentUser): UserResolver {
  const seen = new Map<string, UserLookup>();
  return (name) => {
    if (!seen.has(name)) seen.set(name, resolve(name));
    return seen.get(name);
  };
}

/**
 * What may be a user name: useradd(8)'s rule ([a-z_][a-z0-9_-]*[$]?) widened to upper case
 * and dots, which LDAP and systemd-homed allow; never starting with a digit or "-", so it is
 * never mistaken for a uid, a range or an option.
 */
export const USER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,255}\$?$/;
