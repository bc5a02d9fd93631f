/**
 * A minimal nfnetlink client for nf_tables (NETLINK_NETFILTER, subsystem NFNL_SUBSYS_NFTABLES):
 * dumps (one request, many NEWxxx answers) and batches (NFNL_MSG_BATCH_BEGIN ... END, which
 * nf_tables commits as one transaction: all or nothing). Attribute numbers are those of
 * <linux/netfilter/nf_tables.h>; nf_tables carries integers in network byte order.
 *
 * Why not nft(8) for everything: nft 1.0.6 loads every element of every set before it
 * lists or changes anything (measured here at 100k prefixes: 2-3 s for `nft -j list table`
 * and 2.3 s for `add element` of one prefix), while the kernel answers a dump or takes a
 * small batch in milliseconds. Rules stay with nft(8): their expressions are nft's language.
 *
 * The `netlink` package's RawNetlinkSocket is only the transport. A dump is paced by our
 * reads, and a batch's answers are bounded by its size, so the receive buffer cannot
 * overflow (which would abort the process in the package's native code, DESIGN.md).
 */
import netlink from 'netlink';

const { RawNetlinkSocket } = netlink;

export const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NFNL_MSG_BATCH_BEGIN = 16;
const NFNL_MSG_BATCH_END = 17;
export const F_REQUEST = 0x1;
export const F_ACK = 0x4;
export const F_DUMP = 0x300;
export const F_CREATE = 0x400;
export const NFPROTO_INET = 1;

export const MSG = { NEWGEN: 15, GETGEN: 16, NEWTABLE: 0, GETTABLE: 1, NEWCHAIN: 3, GETCHAIN: 4, NEWRULE: 6, GETRULE: 7, NEWSET: 9, GETSET: 10, NEWSETELEM: 12, GETSETELEM: 13, DELSETELEM: 14 } as const;

/** A netlink attribute, written as type + payload (numbers big-endian, strings NUL-terminated). */
export type Attr = [type: number, payload: Buffer];

export const str = (s: string) => Buffer.from(s + '\0');
export const be32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
export const NLA_F_NESTED = 0x8000;

export function attrs(list: Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const [type, payload] of list) {
    const h = Buffer.alloc(4);
    h.writeUInt16LE(4 + payload.length, 0);
    h.writeUInt16LE(type, 2);
    parts.push(h, payload);
    const pad = (4 - (payload.length % 4)) % 4;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  return Buffer.concat(parts);
}

export function nested(type: number, list: Attr[]): Attr {
  return [type | NLA_F_NESTED, attrs(list)];
}

/** nlmsghdr + nfgenmsg + attributes. */
export function message(type: number, flags: number, seq: number, body: Buffer, family = NFPROTO_INET, resId = 0): Buffer {
  const b = Buffer.alloc(20 + body.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(flags, 6);
  b.writeUInt32LE(seq, 8);
  b[16] = family;
  b[17] = 0; // NFNETLINK_V0
  b.writeUInt16BE(resId, 18);
  body.copy(b, 20);
  return b;
}

export const nftType = (msg: number) => (NFNL_SUBSYS_NFTABLES << 8) | msg;

/** Walk the attributes in buf[start, end): calls fn(type without flags, payload offset, payload length). */
export function eachAttr(buf: Buffer, start: number, end: number, fn: (type: number, off: number, len: number) => void): void {
  let a = start;
  while (a + 4 <= end) {
    const alen = buf.readUInt16LE(a);
    if (alen < 4 || a + alen > end) break;
    fn(buf.readUInt16LE(a + 2) & 0x3fff, a + 4, alen - 4);
    a += (alen + 3) & ~3;
  }
}

export class NfnlError extends Error {
  constructor(readonly errno: number, what: string) {
    super(`${what}: ${ERRNO[errno] ?? `errno ${errno}`}`);
  }
}
const ERRNO: Record<number, string> = { 1: 'EPERM', 2: 'ENOENT', 12: 'ENOMEM', 13: 'EACCES', 16: 'EBUSY', 17: 'EEXIST', 22: 'EINVAL', 90: 'EMSGSIZE', 95: 'EOPNOTSUPP', 105: 'ENOBUFS' };

export class Nfnl {
  private readonly sock: InstanceType<typeof RawNetlinkSocket>;
  private seq = (Date.now() & 0xffff) << 8;
  private sink?: (buf: Buffer) => void;

  constructor() {
    // 4 MiB asked; the kernel caps SO_SNDBUF at net.core.wmem_max (x2), which bounds one batch.
    // A fixed 64 KiB receive buffer instead of peeking: the kernel sizes each dump message by
    // the reader's buffer (netlink_dump: up to 32 KiB), and a set element dump restarts its
    // walk of the set for every message, so small messages make a 100k-element dump quadratic.
    this.sock = new RawNetlinkSocket(NETLINK_NETFILTER, { recvBufferSize: 8 << 20, sendBufferSize: 4 << 20, messagePeeking: false, msgBufferSize: 1 << 16 } as never);
    this.sock.on('message', (buf: Buffer) => this.sink?.(buf));
    this.sock.unref();
  }

  close(): void {
    try {
      this.sock.close();
    } catch {
      /* closed */
    }
  }

  /** Largest batch (bytes) one sendmsg may carry on this socket: SO_SNDBUF less headroom. */
  maxBatchBytes(): number {
    const s = this.sock as unknown as { getSendBufferSize?: () => number };
    const size = s.getSendBufferSize?.() ?? 212992;
    return Math.max(16 << 10, size - 4096);
  }

  /**
   * Send one request (or batch) and hand every answer message to `each`, until it returns
   * a result: `{ done: value }` resolves, an Error rejects. One exchange at a time per
   * socket (the answers of two would mix).
   */
  private exchange<T>(req: Buffer, each: (type: number, seq: number, buf: Buffer, off: number, len: number) => { done: T } | Error | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      this.sock.ref();
      const timer = setTimeout(() => finish(new Error(`${what}: no answer`)), timeoutMs);
      const finish = (e?: Error, value?: T) => {
        clearTimeout(timer);
        this.sink = undefined;
        this.sock.unref();
        if (e) reject(e);
        else resolve(value as T);
      };
      this.sink = (buf) => {
        for (let off = 0; off + 16 <= buf.length; ) {
          const len = buf.readUInt32LE(off);
          if (len < 16 || off + len > buf.length) break;
          const r = each(buf.readUInt16LE(off + 4), buf.readUInt32LE(off + 8), buf, off, len);
          if (r instanceof Error) return finish(r);
          if (r) return finish(undefined, r.done);
          off += (len + 3) & ~3;
        }
      };
      this.sock.send(req, {}, (err?: Error) => err && finish(err));
    });
  }

  /** One dump: every answer message's buffer, offset of its attributes, and end. */
  dump(msg: number, body: Buffer, onMsg: (buf: Buffer, attrStart: number, end: number) => void, timeoutMs = 10_000): Promise<void> {
    const seq = ++this.seq;
    return this.exchange<void>(
      message(nftType(msg), F_REQUEST | F_DUMP, seq, body),
      (type, s, buf, off, len) => {
        if (s !== seq) return undefined;
        if (type === NLMSG_DONE) return { done: undefined };
        if (type === NLMSG_ERROR) {
          const errno = -buf.readInt32LE(off + 16);
          return errno ? new NfnlError(errno, 'nf_tables dump') : { done: undefined };
        }
        onMsg(buf, off + 20, off + len);
        return undefined;
      },
      timeoutMs,
      'nf_tables dump',
    );
  }

  /**
   * The ruleset generation (NFT_MSG_GETGEN, NFTA_GEN_ID): nf_tables counts every committed
   * transaction in this network namespace, whoever made it. Unchanged means nothing in any
   * table changed.
   */
  generation(timeoutMs = 5000): Promise<number> {
    const seq = ++this.seq;
    return this.exchange<number>(
      message(nftType(MSG.GETGEN), F_REQUEST, seq, Buffer.alloc(0), 0),
      (type, s, buf, off, len) => {
        if (s !== seq) return undefined;
        if (type === NLMSG_ERROR) {
          const errno = -buf.readInt32LE(off + 16);
          return errno ? new NfnlError(errno, 'nf_tables generation') : undefined;
        }
        if (type !== nftType(MSG.NEWGEN)) return undefined;
        let gen: number | undefined;
        eachAttr(buf, off + 20, off + len, (t, o) => t === 1 && (gen = buf.readUInt32BE(o)));
        return gen === undefined ? undefined : { done: gen };
      },
      timeoutMs,
      'nf_tables generation',
    );
  }

  /**
   * One transaction: BATCH_BEGIN, the messages (each asks for an ACK), BATCH_END, in one
   * sendmsg. Resolves when every message is answered; rejects with the first error (the
   * kernel then aborts the whole transaction: nothing of it is applied).
   */
  batch(build: (seq: () => number) => Buffer[], timeoutMs = 10_000): Promise<void> {
    const first = ++this.seq;
    let n = 0;
    const msgs = build(() => {
      n++;
      return ++this.seq;
    });
    if (n === 0) return Promise.resolve();
    const begin = message(NFNL_MSG_BATCH_BEGIN, F_REQUEST, first, Buffer.alloc(0), 0, NFNL_SUBSYS_NFTABLES);
    const end = message(NFNL_MSG_BATCH_END, F_REQUEST, ++this.seq, Buffer.alloc(0), 0, NFNL_SUBSYS_NFTABLES);
    let answered = 0;
    return this.exchange<void>(
      Buffer.concat([begin, ...msgs, end]),
      (type, seq, buf, off) => {
        if (type !== NLMSG_ERROR || seq <= first || seq > first + n) return undefined;
        const errno = -buf.readInt32LE(off + 16);
        if (errno) return new NfnlError(errno, 'nf_tables transaction');
        return ++answered === n ? { done: undefined } : undefined;
      },
      timeoutMs,
      'nf_tables batch',
    );
  }
}
