/**
 * Classifies `ip -o monitor label link address route rule` lines into the few kinds the
 * watcher reacts to. Pure. Why `ip monitor` and not the `netlink` package's event socket:
 * that socket aborts the whole process (SIGABRT, in native code) on receive-buffer overflow
 * (DESIGN.md); iproute2 reports ENOBUFS on stderr and keeps listening, so an overflow
 * becomes a full re-sync instead of a crash.
 */
export type EventKind = 'link' | 'address' | 'route' | 'rule' | 'nft' | 'overflow' | 'other';

export interface KernelEvent {
  kind: EventKind;
  deleted: boolean;
  /** why it matters, for the log: "rule deleted", "wg0 changed", ... */
  summary: string;
  relevant: boolean;
}

const RTPROT_NAMES = new Set(['87', 'wgsplit']);

export function classify(line: string, ourTables: ReadonlySet<number>): KernelEvent {
  const m = /^\[(LINK|ADDR|ROUTE|RULE)\](Deleted )?(.*)$/.exec(line);
  if (!m) {
    if (/No buffer space|ENOBUFS/.test(line)) return { kind: 'overflow', deleted: false, summary: 'event buffer overflow', relevant: true };
    return { kind: 'other', deleted: false, summary: line, relevant: false };
  }
  const deleted = !!m[2];
  const body = m[3];
  const verb = deleted ? 'deleted' : 'added/changed';
  switch (m[1]) {
    case 'LINK': {
      const name = /^\d+: ([^:@\s]+)/.exec(body)?.[1] ?? '?';
      return { kind: 'link', deleted, summary: `link ${name} ${deleted ? 'deleted' : 'changed'}`, relevant: true };
    }
    case 'ADDR': {
      const a = /^\d+: (\S+)\s+(inet6?) (\S+)/.exec(body);
      // Link-local IPv6 addresses come and go with every link and never matter to us.
      if (a && a[2] === 'inet6' && a[3].startsWith('fe80:')) return { kind: 'address', deleted, summary: '', relevant: false };
      return { kind: 'address', deleted, summary: `address ${a ? `${a[3]} on ${a[1]}` : body.slice(0, 40)} ${verb}`, relevant: true };
    }
    case 'ROUTE': {
      const table = /\btable (\S+)/.exec(body)?.[1] ?? 'main';
      const proto = /\bproto (\S+)/.exec(body)?.[1] ?? '';
      const dst = body.split(' ')[0] === 'throw' || body.split(' ')[0] === 'unreachable' ? body.split(' ').slice(0, 2).join(' ') : body.split(' ')[0];
      if (RTPROT_NAMES.has(proto) || ourTables.has(Number(table))) {
        return { kind: 'route', deleted, summary: `our route ${dst} (table ${table}) ${verb}`, relevant: true };
      }
      // Connected networks in main (LAN, docker bridges) are excluded with exclude_connected.
      // IPv6 routes print no scope: there it is a kernel route without a gateway.
      const connected = /\bscope link\b/.test(body) || (dst.includes(':') && !/\bvia\b/.test(body));
      if (table === 'main' && proto === 'kernel' && connected && !body.startsWith('fe80:')) {
        return { kind: 'route', deleted, summary: `connected network ${dst} ${verb}`, relevant: true };
      }
      return { kind: 'route', deleted, summary: '', relevant: false };
    }
    default: {
      const rule = body.replace(/\s+/g, ' ').trim();
      const ours = /\bproto (87|wgsplit)\b/.test(rule);
      return { kind: 'rule', deleted, summary: `${ours ? 'our ' : ''}rule ${deleted ? 'deleted' : 'added'}: ${rule}`, relevant: true };
    }
  }
}
