/**
 * argv -> a parsed command. Pure; unknown options and missing arguments are USAGE errors.
 */
import { parseArgs } from 'node:util';
import { WgsplitError } from '../errors.js';
import { USER_NAME } from '../profile/users.js';
import { IFNAME } from '../model/constants.js';

const MAX_RESYNC_S = 2147483;
import { DEFAULT_DNSMASQ_CONF, DEFAULT_DNSMASQ_RELOAD, type DnsmasqConfig } from '../dnsmasq/dnsmasq.js';

export const COMMANDS = ['up', 'down', 'apply', 'diff', 'status', 'check', 'watch', 'explain', 'export', 'exec', 'metrics', 'help', 'version'] as const;
export type CommandName = (typeof COMMANDS)[number];

export interface Args {
  command: CommandName;
  positionals: string[];
  config: string;
  json: boolean;
  dryRun: boolean;
  debug: boolean;
  quiet: boolean;
  full: boolean;
  colour: boolean;
  help: boolean;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  logJson: boolean;
  cleanupOnExit: boolean;
  resyncSeconds: number;
  /** `user`: --uid given as a name, resolved by the explain command (I/O) */
  explain: { proto?: 'tcp' | 'udp' | 'icmp'; dport?: number; sport?: number; uid?: number; user?: string; from?: string; iif?: string; app?: string; pid?: number };
  /** `exec PROFILE [--user USER] -- COMMAND [ARGS]` */
  exec?: { profile: string; user?: string; command: string[] };
  format: 'ip' | 'nft' | 'json';
  family?: 4 | 6;
  /** the dnsmasq drop-in and reload command (include_domains / exclude_domains) */
  dnsmasq: DnsmasqConfig;
  /** watch: write the metrics to this file (node_exporter textfile collector), at most every metricsIntervalSeconds */
  metricsTextfile?: string;
  metricsIntervalSeconds: number;
}

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  json: { type: 'boolean' },
  'dry-run': { type: 'boolean', short: 'n' },
  debug: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  full: { type: 'boolean' },
  'no-color': { type: 'boolean' },
  color: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
  'log-level': { type: 'string' },
  'log-json': { type: 'boolean' },
  'cleanup-on-exit': { type: 'boolean' },
  resync: { type: 'string' },
  proto: { type: 'string', short: 'p' },
  dport: { type: 'string' },
  sport: { type: 'string' },
  uid: { type: 'string' },
  from: { type: 'string' },
  format: { type: 'string', short: 'f' },
  family: { type: 'string' },
  user: { type: 'string', short: 'u' },
  app: { type: 'string' },
  pid: { type: 'string' },
  'dnsmasq-conf': { type: 'string' },
  'dnsmasq-reload': { type: 'string' },
  iif: { type: 'string' },
  'metrics-textfile': { type: 'string' },
  'metrics-interval': { type: 'string' },
} as const;

/** Which options each command accepts besides the global ones. */
const ALLOWED: Record<CommandName, string[]> = {
  up: ['dry-run', 'dnsmasq-conf', 'dnsmasq-reload'],
  down: ['dry-run', 'dnsmasq-conf', 'dnsmasq-reload'],
  apply: ['dry-run', 'full', 'dnsmasq-conf', 'dnsmasq-reload'],
  diff: ['json', 'full', 'dnsmasq-conf'],
  status: ['json'],
  check: ['json'],
  watch: ['log-level', 'log-json', 'cleanup-on-exit', 'resync', 'dnsmasq-conf', 'dnsmasq-reload', 'metrics-textfile', 'metrics-interval'],
  explain: ['json', 'proto', 'dport', 'sport', 'uid', 'from', 'iif', 'app', 'pid'],
  export: ['format', 'family'],
  exec: ['user'],
  metrics: [],
  help: [],
  version: [],
};
const GLOBAL = ['config', 'debug', 'quiet', 'no-color', 'color', 'help', 'version'];

export function parseCli(argv: string[], env: NodeJS.ProcessEnv, isTTY: boolean): Args {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true, tokens: true });
  } catch (e) {
    throw new WgsplitError('USAGE', (e as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  const [first, ...rest] = parsed.positionals;
  let command: CommandName;
  if (v.version) command = 'version';
  else if (first === undefined) command = 'help';
  else if ((COMMANDS as readonly string[]).includes(first)) command = first as CommandName;
  else throw new WgsplitError('USAGE', `unknown command "${first}" (commands: ${COMMANDS.filter((c) => c !== 'version').join(', ')})`);

  for (const k of Object.keys(v)) {
    if (v[k] === undefined || GLOBAL.includes(k)) continue;
    if (!ALLOWED[command].includes(k)) throw new WgsplitError('USAGE', `option --${k} does not apply to "${command}"`);
  }
  const needsIface = command === 'up' || command === 'down';
  if (!v.help && needsIface && rest.length !== 1) throw new WgsplitError('USAGE', `usage: wgsplit ${command} IFACE`);
  if (!v.help && needsIface && !IFNAME.test(rest[0])) throw new WgsplitError('USAGE', `${JSON.stringify(rest[0])} is not an interface name (1-15 characters: letters, digits, _ . : @ -)`);
  if (v.config === '') throw new WgsplitError('USAGE', '--config needs a directory');
  if (!v.help && ['apply', 'diff', 'status', 'metrics'].includes(command) && rest.length) throw new WgsplitError('USAGE', `"${command}" takes no arguments (got ${rest.join(' ')})`);

  // Only the watcher logs: a bad WGSPLIT_LOG_LEVEL must not break `up` from wg-quick.
  const logLevel = (v['log-level'] as string | undefined) ?? (command === 'watch' ? env.WGSPLIT_LOG_LEVEL : undefined) ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) throw new WgsplitError('USAGE', `--log-level must be debug, info, warn or error (got "${logLevel}")`);
  const resyncText = (v.resync as string | undefined) ?? '300';
  // setInterval takes at most 2^31-1 ms and quietly runs a longer one every 1 ms instead; under
  // a second the safety net would be a busy loop.
  const resync = Number(resyncText);
  if (!/^\d+(\.\d+)?$/.test(resyncText) || (resync !== 0 && (resync < 1 || resync > MAX_RESYNC_S)))
    throw new WgsplitError('USAGE', `--resync takes seconds, 1-${MAX_RESYNC_S} (0 to disable), got "${resyncText}"`);
  const intervalText = (v['metrics-interval'] as string | undefined) ?? '10';
  if (!/^\d+(\.\d+)?$/.test(intervalText) || Number(intervalText) < 1) throw new WgsplitError('USAGE', `--metrics-interval takes seconds, at least 1 (got "${intervalText}")`);
  if (v['metrics-textfile'] === '') throw new WgsplitError('USAGE', '--metrics-textfile needs a file name');
  if (v['metrics-interval'] !== undefined && v['metrics-textfile'] === undefined) throw new WgsplitError('USAGE', '--metrics-interval needs --metrics-textfile');
  if (!v.help && command === 'watch' && rest.length) throw new WgsplitError('USAGE', `"watch" takes no arguments (got ${rest.join(' ')})`);
  const num = (k: string, max: number) => {
    const t = v[k] as string | undefined;
    if (t === undefined) return undefined;
    if (!/^\d+$/.test(t) || Number(t) > max) throw new WgsplitError('USAGE', `--${k} takes a number 0-${max}, got "${t}"`);
    return Number(t);
  };
  const uidText = v.uid as string | undefined;
  const user = uidText !== undefined && !/^\d+$/.test(uidText) ? uidText : undefined;
  if (user !== undefined && !USER_NAME.test(user)) throw new WgsplitError('USAGE', `--uid takes a uid 0-4294967295 or a user name, got "${user}"`);
  const proto = v.proto as string | undefined;
  if (proto !== undefined && !['tcp', 'udp', 'icmp'].includes(proto)) throw new WgsplitError('USAGE', `--proto must be tcp, udp or icmp (got "${proto}")`);
  if ((v.dport !== undefined || v.sport !== undefined) && proto !== 'tcp' && proto !== 'udp') throw new WgsplitError('USAGE', '--dport and --sport need --proto tcp or udp');
  // exec: PROFILE before `--`, the command after it (its options are its own, never ours).
  let exec: Args['exec'];
  if (command === 'exec' && !v.help) {
    const term = parsed.tokens.findIndex((t) => t.kind === 'option-terminator');
    const before = term < 0 ? rest.length : parsed.tokens.slice(0, term).filter((t) => t.kind === 'positional').length - 1;
    const usage = 'usage: wgsplit exec PROFILE [--user USER] -- COMMAND [ARGS...]';
    if (term < 0) throw new WgsplitError('USAGE', `${usage} (the "--" before COMMAND is required)`);
    if (before !== 1) throw new WgsplitError('USAGE', before === 0 ? `${usage} (no PROFILE given)` : `${usage} (one PROFILE before "--", got ${rest.slice(0, before).join(' ')})`);
    if (rest.length < 2) throw new WgsplitError('USAGE', `${usage} (no COMMAND after "--")`);
    if (v.user !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(v.user as string)) throw new WgsplitError('USAGE', `--user takes a user name or uid, got "${v.user}"`);
    exec = { profile: rest[0], user: v.user as string | undefined, command: rest.slice(1) };
  }
  if (v.app !== undefined && v.pid !== undefined) throw new WgsplitError('USAGE', '--app and --pid both name the application: give one');
  if (!v.help && command === 'explain' && rest.length !== 1) throw new WgsplitError('USAGE', 'usage: wgsplit explain DEST [--proto tcp|udp|icmp] [--dport N] [--sport N] [--uid N] [--from ADDR] [--iif IFACE] [--app CGROUP | --pid PID] [--json]');
  // A forwarded packet (gateway mode) has a source already and no uid: it is no socket's.
  if (v.iif !== undefined && v.from === undefined) throw new WgsplitError('USAGE', '--iif IFACE asks about a forwarded packet: give its source with --from ADDR');
  if (v.iif !== undefined && v.uid !== undefined) throw new WgsplitError('USAGE', '--uid is for the host\'s own traffic; a forwarded packet (--iif) has no uid');
  if (v.iif !== undefined && (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(v.iif as string) || v.iif === 'lo')) throw new WgsplitError('USAGE', `--iif takes the interface a forwarded packet came in on (not lo), got "${v.iif}"`);
  const format = (v.format as string | undefined) ?? 'ip';
  if (!['ip', 'nft', 'json'].includes(format)) throw new WgsplitError('USAGE', `--format must be ip, nft or json (got "${format}")`);
  const family = v.family === undefined ? undefined : v.family === '4' || v.family === 'ipv4' ? 4 : v.family === '6' || v.family === 'ipv6' ? 6 : NaN;
  if (Number.isNaN(family)) throw new WgsplitError('USAGE', `--family must be 4 or 6 (got "${v.family}")`);
  if (!v.help && command === 'export' && rest.length) throw new WgsplitError('USAGE', `"export" takes no arguments (got ${rest.join(' ')})`);
  const dnsmasqConf = (v['dnsmasq-conf'] as string | undefined) ?? env.WGSPLIT_DNSMASQ_CONF ?? DEFAULT_DNSMASQ_CONF;
  if (!dnsmasqConf.startsWith('/') || dnsmasqConf.endsWith('/')) throw new WgsplitError('USAGE', `--dnsmasq-conf takes an absolute file path (got "${dnsmasqConf}")`);
  const dnsmasqReload = (v['dnsmasq-reload'] as string | undefined) ?? env.WGSPLIT_DNSMASQ_RELOAD ?? DEFAULT_DNSMASQ_RELOAD;
  if (!dnsmasqReload.trim()) throw new WgsplitError('USAGE', '--dnsmasq-reload must not be empty (use "true" to run nothing)');
  // no-color.org: NO_COLOR set to a non-empty value turns colours off.
  const colourEnv = !env.NO_COLOR && env.TERM !== 'dumb';
  return {
    command,
    positionals: rest,
    // An empty WGSPLIT_CONFIG is unset (as for most tools), not "the current directory".
    config: (v.config as string | undefined) ?? (env.WGSPLIT_CONFIG || '/etc/wgsplit'),
    json: !!v.json,
    dryRun: !!v['dry-run'],
    debug: !!v.debug || env.WGSPLIT_DEBUG === '1',
    quiet: !!v.quiet,
    full: !!v.full,
    colour: v['no-color'] ? false : v.color ? true : isTTY && colourEnv,
    help: !!v.help || command === 'help',
    logLevel: logLevel as Args['logLevel'],
    logJson: !!v['log-json'],
    cleanupOnExit: !!v['cleanup-on-exit'],
    resyncSeconds: Number(resyncText),
    explain: { proto: proto as Args['explain']['proto'], dport: num('dport', 65535), sport: num('sport', 65535), uid: user === undefined ? num('uid', 4294967295) : undefined, user, from: v.from as string | undefined, iif: v.iif as string | undefined, app: v.app as string | undefined, pid: num('pid', 4194304) },
    exec,
    format: format as Args['format'],
    family: family as 4 | 6 | undefined,
    dnsmasq: { conf: dnsmasqConf, reload: dnsmasqReload, binary: env.WGSPLIT_DNSMASQ || undefined },
    metricsTextfile: v['metrics-textfile'] as string | undefined,
    metricsIntervalSeconds: Number(intervalText),
  };
}
