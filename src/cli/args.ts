/**
 * argv -> a parsed command. Pure; unknown options and missing arguments are USAGE errors.
 */
import { parseArgs } from 'node:util';
import { WgsplitError } from '../errors.js';

export const COMMANDS = ['up', 'down', 'apply', 'diff', 'status', 'check', 'watch', 'explain', 'export', 'help', 'version'] as const;
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
} as const;

/** Which options each command accepts besides the global ones. */
const ALLOWED: Record<CommandName, string[]> = {
  up: ['dry-run'],
  down: ['dry-run'],
  apply: ['dry-run', 'full'],
  diff: ['json', 'full'],
  status: ['json'],
  check: ['json'],
  watch: ['log-level', 'log-json', 'cleanup-on-exit', 'resync'],
  explain: ['json'],
  export: [],
  help: [],
  version: [],
};
const GLOBAL = ['config', 'debug', 'quiet', 'no-color', 'color', 'help', 'version'];

export function parseCli(argv: string[], env: NodeJS.ProcessEnv, isTTY: boolean): Args {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
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
  if (!v.help && ['apply', 'diff', 'status'].includes(command) && rest.length) throw new WgsplitError('USAGE', `"${command}" takes no arguments (got ${rest.join(' ')})`);

  const logLevel = (v['log-level'] as string | undefined) ?? env.WGSPLIT_LOG_LEVEL ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) throw new WgsplitError('USAGE', `--log-level must be debug, info, warn or error (got "${logLevel}")`);
  const resyncText = (v.resync as string | undefined) ?? '300';
  if (!/^\d+(\.\d+)?$/.test(resyncText)) throw new WgsplitError('USAGE', `--resync takes seconds (0 to disable), got "${resyncText}"`);
  if (!v.help && command === 'watch' && rest.length) throw new WgsplitError('USAGE', `"watch" takes no arguments (got ${rest.join(' ')})`);
  const colourEnv = env.NO_COLOR === undefined && env.TERM !== 'dumb';
  return {
    command,
    positionals: rest,
    config: (v.config as string | undefined) ?? env.WGSPLIT_CONFIG ?? '/etc/wgsplit',
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
  };
}
