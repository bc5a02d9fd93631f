/**
 * One line per change, journald-friendly: under systemd (JOURNAL_STREAM is set) lines carry
 * a syslog priority prefix (`<6>`, sd-daemon(3)) and no timestamp, since journald adds its
 * own; elsewhere an ISO timestamp. `--log-json` prints JSON lines instead.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const SYSLOG: Record<Level, number> = { debug: 7, info: 6, warn: 4, error: 3 };

export interface LoggerOptions {
  level: Level;
  json: boolean;
  journald: boolean;
  write: (line: string) => void;
  now?: () => Date;
}

export type Fields = Record<string, string | number | boolean | undefined>;

export class Logger {
  constructor(private readonly o: LoggerOptions) {}

  log(level: Level, msg: string, fields: Fields = {}): void {
    if (ORDER[level] < ORDER[this.o.level]) return;
    const now = (this.o.now ?? (() => new Date()))();
    if (this.o.json) {
      this.o.write(JSON.stringify({ time: now.toISOString(), level, msg, ...fields }) + '\n');
      return;
    }
    const kv = Object.entries(fields)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' && /[\s"=]/.test(v) ? JSON.stringify(v) : v}`)
      .join(' ');
    const text = `${msg}${kv ? ' ' + kv : ''}`;
    this.o.write(this.o.journald ? `<${SYSLOG[level]}>${text}\n` : `${now.toISOString()} ${level.toUpperCase().padEnd(5)} ${text}\n`);
  }
  debug(m: string, f?: Fields) {
    this.log('debug', m, f);
  }
  info(m: string, f?: Fields) {
    this.log('info', m, f);
  }
  warn(m: string, f?: Fields) {
    this.log('warn', m, f);
  }
  error(m: string, f?: Fields) {
    this.log('error', m, f);
  }
}
