/**
 * Typed errors. Every failure wgsplit reports carries a stable `code`; only the CLI
 * prints them and turns the code into an exit status (see cli/exitCodes.ts).
 */
export type ErrorCode =
  | 'USAGE' // bad flags or arguments
  | 'PROFILE' // one or more profiles do not validate (details in `problems`)
  | 'CONFIG_PERMS' // config directory or profile is not root-owned / is group- or world-writable
  | 'NO_INTERFACE' // the named interface does not exist
  | 'ENVIRONMENT' // something about the machine prevents applying (collision, missing tool)
  | 'KERNEL_UNSUPPORTED' // the kernel stored something other than what we asked for
  | 'KERNEL' // a netlink request failed
  | 'INTERNAL';

/** One problem in one profile, positioned so editors can jump to it. */
export interface Problem {
  file: string;
  line: number; // 1-based
  col: number; // 1-based
  message: string;
}

export function formatProblem(p: Problem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.message}`;
}

export class WgsplitError extends Error {
  readonly code: ErrorCode;
  readonly problems: Problem[];
  constructor(code: ErrorCode, message: string, opts: { cause?: unknown; problems?: Problem[] } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'WgsplitError';
    this.code = code;
    this.problems = opts.problems ?? [];
  }
}
