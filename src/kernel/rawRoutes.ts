/**
 * Routes in bulk over a raw rtnetlink socket: our own encoding of RTM_NEWROUTE /
 * RTM_DELROUTE (rtnetlink(7)), many messages per sendmsg, and a dump parser that builds
 * objects only for routes carrying our tag. Why not the `netlink` package's typed calls:
 * they encode and parse every attribute of every route through generic structs; measured
 * here (DESIGN.md) 3.3-3.7 s for 100k routes, against 0.75 s for pre-encoded messages,
 * while `ip -batch` takes 1.9 s. Rules stay on the typed API (there are few of them).
 *
 * The package's RawNetlinkSocket is used only as a transport (socket, send, receive).
 */
import netlink from 'netlink';
import { formatAddress, type Family, type Prefix } from '../model/prefix.js';
import { PrefixList } from '../model/prefixList.js';
import type { ThrowSet } from '../model/throwSet.js';
import type { RouteSpec, RouteType } from '../model/route.js';
import { WgsplitError } from '../errors.js';
import { SendThread } from './sendThread.js';

const { RawNetlinkSocket } = netlink;

const NETLINK_ROUTE = 0;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTM_GETROUTE = 26;
const F_REQUEST = 0x1;
const F_ACK = 0x4;
const F_DUMP = 0x300;
const F_REPLACE = 0x100;
const F_EXCL = 0x200;
const F_CREATE = 0x400;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_PREFSRC = 7;
const RTA_MULTIPATH = 9;
const RTA_TABLE = 15;
const AF: Record<Family, number> = { 4: 2, 6: 10 };
const TYPE_NUM: Record<RouteType, number> = { unicast: 1, local: 2, unreachable: 7, throw: 9 };
const TYPE_OF: Record<number, RouteType> = { 1: 'unicast', 2: 'local', 7: 'unreachable', 9: 'throw' };
const RTN_THROW = 9;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RT_SCOPE_HOST = 254;
const RT_SCOPE_NOWHERE = 255;

/** A dumped route not carrying our tag, minimal (ours are RouteSpecs: see dump). */
export interface RawRoute {
  family: Family;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  dst: string;
  oif?: number;
  gateway: boolean;
}

const errnoNames: Record<number, string> = { 1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 13: 'EACCES', 17: 'EEXIST', 19: 'ENODEV', 22: 'EINVAL', 95: 'EOPNOTSUPP', 101: 'ENETUNREACH', 105: 'ENOBUFS' };

function addrText(family: Family, b: Buffer, off: number): string {
  if (family === 4) return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
  let v = 0n;
  for (let i = 0; i < 16; i++) v = (v << 8n) | BigInt(b[off + i]);
  return formatAddress(6, v);
}

/** Write the address text[0, end) (IPv4: canonical dotted quad, digits and dots only). */
function putAddr(family: Family, text: string, out: Buffer, off: number, end = text.length): void {
  if (family === 4) {
    let octet = 0;
    let k = off;
    for (let i = 0; i < end; i++) {
      const c = text.charCodeAt(i);
      if (c === 46) {
        out[k++] = octet;
        octet = 0;
      } else octet = octet * 10 + (c - 48);
    }
    out[k] = octet;
    return;
  }
  if (end < text.length) text = text.slice(0, end);
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  for (let i = 0; i < 8; i++) out.writeUInt16BE(parseInt(groups[i], 16), off + i * 2);
}

export class RawRoutes {
  private readonly sock: InstanceType<typeof RawNetlinkSocket>;
  private seq = 1;
  private readonly pending = new Map<number, (errno: number) => void>();
  /** messages the send thread took, over this object's life (tests check both paths ran) */
  threadSent = 0;
  /** may large batches use the send thread (see THREAD_MIN)? */
  sendThread = true;
  private batch?: { base: number; n: number; ack: (seq: number, errno: number) => void };
  private dumpSink?: { seq: number; onMsg: (b: Buffer, off: number, len: number) => void; done: () => void; fail: (e: Error) => void };

  constructor() {
    // No peeking: the package's default peeks at each datagram (a 1-byte MSG_PEEK, then a
    // read of its size), and the kernel sizes a dump's datagrams by the largest read it has
    // seen (netlink_recvmsg, max_recvmsg_len, at most 32 KiB): 3.7 KiB with peeking, so a
    // 100k-route dump came as ~1200 datagrams and twice as many syscalls instead of ~140.
    // 64 KiB is more than any message the kernel sends this socket.
    this.sock = new RawNetlinkSocket(NETLINK_ROUTE, { recvBufferSize: 16 << 20, sendBufferSize: 4 << 20, messagePeeking: false, msgBufferSize: 65536 } as never);
    this.sock.on('message', (buf: Buffer) => this.receive(buf));
    // Cannot happen with a buffer above the kernel's datagram size; if it did, a dump would be short.
    this.sock.on('truncatedMessage', () => this.dumpSink?.fail(new Error('dump failed: a datagram was truncated')));
    this.sock.unref();
  }

  close(): void {
    this.sock.close();
  }

  private receive(buf: Buffer): void {
    let off = 0;
    while (off + 16 <= buf.length) {
      const len = buf.readUInt32LE(off);
      if (len < 16 || off + len > buf.length) break;
      const type = buf.readUInt16LE(off + 4);
      const seq = buf.readUInt32LE(off + 8);
      if (type === NLMSG_ERROR) {
        const errno = -buf.readInt32LE(off + 16);
        const cb = this.pending.get(seq);
        if (this.batch && seq >= this.batch.base && seq < this.batch.base + this.batch.n) this.batch.ack(seq, errno);
        else if (cb) {
          this.pending.delete(seq);
          cb(errno);
        } else if (this.dumpSink?.seq === seq) this.dumpSink.fail(new Error(`dump failed: ${errnoNames[errno] ?? errno}`));
      } else if (this.dumpSink && seq === this.dumpSink.seq) {
        if (type === NLMSG_DONE) this.dumpSink.done();
        else this.dumpSink.onMsg(buf, off, len);
      }
      off += (len + 3) & ~3;
    }
  }

  /**
   * Dump one family's routes. Routes carrying `tag` that we could have made go into `ours`:
   * throws packed into `throws` (model/throwSet.ts: a number per IPv4 route, no text, no
   * object; at 100k routes the text and objects were most of a no-op re-apply), the rest as
   * specs. Other tagged routes are dropped; the rest are returned minimal.
   */
  dump(family: Family, tag: number, ifname: (index: number) => string | undefined, ours: RouteSpec[] = [], throws: ThrowSet[] = []): Promise<RawRoute[]> {
    const seq = this.seq++;
    const req = Buffer.alloc(16 + 12);
    req.writeUInt32LE(req.length, 0);
    req.writeUInt16LE(RTM_GETROUTE, 4);
    req.writeUInt16LE(F_REQUEST | F_DUMP, 6);
    req.writeUInt32LE(seq, 8);
    req[16] = AF[family];
    const out: RawRoute[] = [];
    // Throws by table and metric: IPv4 as key4 numbers in a growing typed array.
    type Group = { table: number; metric: number; keys: Float64Array; n: number; v6: Prefix[] };
    const packed = new Map<string, Group>();
    let last: Group | undefined;
    return new Promise((resolve, reject) => {
      this.sock.ref();
      const finish = (e?: Error) => {
        this.dumpSink = undefined;
        this.sock.unref();
        if (e) return reject(e);
        for (const g of packed.values()) throws.push({ family, table: g.table, metric: g.metric, protocol: tag, dsts: PrefixList.distinct(family, g.keys.subarray(0, g.n), g.v6) });
        resolve(out);
      };
      this.dumpSink = {
        seq,
        done: () => finish(),
        fail: (e) => finish(e),
        onMsg: (b, off, len) => {
          const r = off + 16;
          if (b[r] !== AF[family]) return;
          const dstLen = b[r + 1];
          const srcLen = b[r + 2];
          let table = b[r + 4];
          const protocol = b[r + 5];
          const scope = b[r + 6];
          const type = b[r + 7];
          let dst: string | undefined;
          let dstAt = -1;
          let oif: number | undefined;
          let metric = 0;
          let prefsrc: string | undefined;
          let gateway = false;
          let a = r + 12;
          const end = off + len;
          while (a + 4 <= end) {
            const alen = b.readUInt16LE(a);
            const atype = b.readUInt16LE(a + 2) & 0x3fff;
            if (alen < 4) break;
            const d = a + 4;
            if (atype === RTA_TABLE) table = b.readUInt32LE(d);
            else if (atype === RTA_DST) dstAt = d;
            else if (atype === RTA_OIF) oif = b.readUInt32LE(d);
            else if (atype === RTA_PRIORITY) metric = b.readUInt32LE(d);
            else if (atype === RTA_GATEWAY || atype === RTA_MULTIPATH) gateway = true;
            else if (atype === RTA_PREFSRC && protocol === tag) prefsrc = addrText(family, b, d);
            a += (alen + 3) & ~3;
          }
          if (protocol === tag && type === RTN_THROW && !gateway && srcLen === 0) {
            // A number per route here; the text and object it replaces cost several times that.
            let g = last;
            if (!g || g.table !== table || g.metric !== metric) {
              const gk = `${table}|${metric}`;
              g = packed.get(gk);
              if (!g) packed.set(gk, (g = { table, metric, keys: new Float64Array(1024), n: 0, v6: [] }));
              last = g;
            }
            if (family === 4) {
              if (g.n === g.keys.length) {
                const grown = new Float64Array(g.keys.length * 4);
                grown.set(g.keys);
                g.keys = grown;
              }
              const a = dstAt < 0 ? 0 : b[dstAt] * 16777216 + ((b[dstAt + 1] << 16) | (b[dstAt + 2] << 8) | b[dstAt + 3]);
              g.keys[g.n++] = a * 64 + dstLen;
            } else {
              let v = 0n;
              if (dstAt >= 0) for (let i = 0; i < 16; i++) v = (v << 8n) | BigInt(b[dstAt + i]);
              g.v6.push({ family: 6, addr: v, len: dstLen });
            }
            return;
          }
          if (dstAt >= 0) dst = addrText(family, b, dstAt);
          const dstText = `${dst ?? (family === 4 ? '0.0.0.0' : '::')}/${dstLen}`;
          if (protocol === tag) {
            const t = TYPE_OF[type];
            if (!t || gateway || srcLen !== 0) return;
            const spec: RouteSpec = { family, table, type: t, dst: dstText, metric, protocol };
            if (t === 'unicast' || t === 'local') {
              if (oif !== undefined) spec.dev = ifname(oif) ?? `if${oif}`;
              if (prefsrc) spec.src = prefsrc;
            }
            ours.push(spec);
            return;
          }
          out.push({ family, table, protocol, scope, type, dst: dstText, oif, gateway });
        },
      };
      this.sock.send(req, {}, (err?: Error) => err && finish(err));
    });
  }

  /** Encode one route request. */
  encode(op: RouteOp, r: RouteSpec, ifindex: (name: string) => number | undefined): Buffer {
    const b = Buffer.alloc(routeMessageMax(r));
    return b.subarray(0, encodeRoute(op, r, ifindex, b, 0));
  }

  /**
   * Send messages `perSend` to a sendmsg, with up to `window` sends unconfirmed, and return
   * the errno (0 = ok) of each message, in order.
   *
   * Only the last message of each send asks for an ACK (NLM_F_ACK): rtnetlink handles a
   * send's messages in order, and a failed request is answered with NLMSG_ERROR whether or
   * not it asked, so the last ACK of a send means every message before it is done and its
   * error, if any, has arrived. That spares receiving 100k ACKs one datagram at a time,
   * which cost more than the kernel's own work. The window bounds what can be queued for
   * us (errors carry the request: ~100 bytes, 1024 at most) far below the receive buffer,
   * whose overflow would abort the process in the package's native code.
   */
  execute(msgs: Buffer[], perSend = 128, onProgress?: (done: number) => void, window = 8): Promise<number[]> {
    return this.executeEncoded(
      msgs.length,
      (i, out, off) => {
        msgs[i].copy(out, off);
        return off + msgs[i].length;
      },
      (i) => msgs[i].length,
      perSend,
      onProgress,
      window,
    );
  }

  /**
   * execute() for messages encoded on demand, each straight into the buffer of the send
   * that carries it: `encodeAt(i, out, off)` writes message i at `off` and returns its end;
   * `maxSize(i)` bounds its length. At 100k routes, one Buffer per message plus a concat
   * per send was a measurable share of an apply (allocation and garbage collection), and
   * encoding while sending keeps memory flat.
   */
  executeEncoded(
    n: number,
    encodeAt: (i: number, out: Buffer, off: number) => number,
    maxSize: (i: number) => number,
    perSend = 128,
    onProgress?: (done: number) => void,
    window = 8,
    threaded = this.sendThread && n >= THREAD_MIN,
  ): Promise<number[]> {
    const results = new Array<number>(n).fill(0);
    if (n === 0) return Promise.resolve(results);
    const base = this.seq;
    this.seq += n;
    this.sock.ref();
    return new Promise<number[]>((resolve, reject) => {
      let sent = 0;
      let confirmed = 0; // messages of sends whose last ACK has arrived
      let failed = false;
      const finish = (e?: Error) => {
        this.batch = undefined;
        this.sock.unref();
        thread?.close();
        if (e) reject(e);
        else resolve(results);
      };
      // The second thread starts now and takes over once its socket is open; until then,
      // and for good if it cannot start, this thread sends.
      const thread = threaded
        ? new SendThread(
            (b) => this.receive(b),
            (e) => {
              if (failed) return;
              failed = true;
              finish(e);
            },
          )
        : undefined;
      thread?.hold(true);
      const pump = () => {
        while (!failed && sent < n && sent - confirmed < perSend * (thread?.ready ? THREAD_WINDOW : window)) {
          const via = thread?.ready ? thread : undefined;
          const end = Math.min(n, sent + perSend);
          let size = 0;
          for (let i = sent; i < end; i++) size += maxSize(i);
          // Its own buffer per send: the package's send is asynchronous and keeps it; one
          // for the thread is a whole ArrayBuffer, as it is moved, not copied.
          const out = via ? Buffer.from(new ArrayBuffer(size)) : Buffer.allocUnsafe(size);
          let off = 0;
          for (let i = sent; i < end; i++) {
            const at = off;
            try {
              off = encodeAt(i, out, off);
            } catch (e) {
              failed = true;
              finish(e as Error);
              return;
            }
            const seq = base + i;
            out[at + 8] = seq & 0xff;
            out[at + 9] = (seq >>> 8) & 0xff;
            out[at + 10] = (seq >>> 16) & 0xff;
            out[at + 11] = seq >>> 24;
            // NLM_F_ACK (0x4) sits in the flags' low byte.
            out[at + 6] = i === end - 1 ? out[at + 6] | F_ACK : out[at + 6] & ~F_ACK;
          }
          if (via) {
            via.send(out.buffer as ArrayBuffer, off);
            this.threadSent += end - sent;
          }
          else
            this.sock.send(out.subarray(0, off), {}, (err?: Error) => {
              if (err && !failed) {
                failed = true;
                finish(err);
              }
            });
          sent = end;
        }
      };
      this.batch = {
        base,
        n,
        ack: (seq, errno) => {
          const i = seq - base;
          results[i] = errno;
          const last = i === n - 1 || (i + 1) % perSend === 0;
          if (!last) return; // an error for a message in the middle of a send
          // Counted per send, not as a high-water mark: the two threads' sockets answer
          // independently, so sends may complete out of order.
          confirmed += i + 1 - Math.floor(i / perSend) * perSend;
          onProgress?.(confirmed);
          if (confirmed === n) finish();
          else pump();
        },
      };
      pump();
    });
  }
}

/**
 * From this many messages on, a batch is sent by a second thread (sendThread.ts): starting
 * one costs ~30 ms, which only a large batch wins back.
 */
const THREAD_MIN = 8192;
/** Sends in flight through the thread: its answers come back through the event loop, later. */
const THREAD_WINDOW = 32;

/**
 * 0..n-1 in bit-reversal order (index i's bits reversed, skipping those past the end): the
 * order in which a phase's routes, sorted, go to the kernel, so that neighbours go far
 * apart. Inside one phase route requests are independent, and the IPv4 FIB takes them
 * faster scattered: 100k sorted /24 throws took 440-465 ms of kernel time here, the same in
 * bit-reversal order 316-339 ms (random order 345-351 ms), presumably as the LC-trie
 * (fib_trie.c) resizes the node it keeps growing less often.
 */
export function scatteredOrder(n: number): Uint32Array {
  const out = new Uint32Array(n);
  if (n < 4) {
    for (let i = 0; i < n; i++) out[i] = i;
    return out;
  }
  let bits = 0;
  while (2 ** bits < n) bits++;
  const size = 2 ** bits;
  const shift = 32 - bits;
  let k = 0;
  // 32-bit reversal from a byte table, in integer arithmetic throughout (~1 ms for 100k).
  for (let i = 0; i < size; i++) {
    const r = ((REV8[i & 255] << 24) | (REV8[(i >>> 8) & 255] << 16) | (REV8[(i >>> 16) & 255] << 8) | REV8[i >>> 24]) >>> shift;
    if (r < n) out[k++] = r;
  }
  return out;
}

/** Each byte's bits reversed. */
const REV8 = Uint8Array.from({ length: 256 }, (_, i) => {
  let r = 0;
  for (let b = 0; b < 8; b++) r |= ((i >> b) & 1) << (7 - b);
  return r;
});

export type RouteOp = 'add' | 'replace' | 'delete';

/** An upper bound of encodeRoute's length for r: header, rtmsg, up to five attributes. */
export function routeMessageMax(r: RouteSpec): number {
  return 16 + 12 + 5 * (4 + (r.family === 4 ? 4 : 16));
}

/**
 * Encode one route request into `b` at `off` (rtnetlink(7): nlmsghdr, rtmsg, attributes);
 * returns the end. seq is written by the sender.
 */
export function encodeRoute(op: RouteOp, r: RouteSpec, ifindex: (name: string) => number | undefined, b: Buffer, off: number): number {
  const alen = r.family === 4 ? 4 : 16;
  const slash = r.dst.indexOf('/');
  // The length by hand: two digits at most (a Number(slice) per route showed at 100k).
  let dstLen = 0;
  for (let i = slash + 1; i < r.dst.length; i++) dstLen = dstLen * 10 + r.dst.charCodeAt(i) - 48;
  let oif: number | undefined;
  // unicast and local (the proxy target's `local default dev lo`) name their device.
  const dev = (r.type === 'unicast' || r.type === 'local') && op !== 'delete' && r.dev !== undefined;
  if (dev) {
    oif = ifindex(r.dev!);
    if (oif === undefined) throw new WgsplitError('NO_INTERFACE', `interface ${r.dev} does not exist`);
  }
  let o = routeHeader(op, r.family, dstLen, r.table, r.protocol, r.type, b, off);
  if (dstLen > 0 || r.family === 6) {
    o = attrHeader(b, o, RTA_DST, alen);
    putAddr(r.family, r.dst, b, o, slash);
    o += alen;
  }
  o = u32Attr(b, o, RTA_TABLE, r.table);
  o = u32Attr(b, o, RTA_PRIORITY, r.metric);
  if (dev) {
    o = u32Attr(b, o, RTA_OIF, oif!);
    if (r.src) {
      o = attrHeader(b, o, RTA_PREFSRC, alen);
      putAddr(r.family, r.src, b, o);
      o += alen;
    }
  }
  return messageEnd(b, off, o);
}

/**
 * nlmsghdr and rtmsg of a route request at `off` (rtnetlink(7)); returns where the
 * attributes start. seq is written by the sender.
 */
function routeHeader(op: RouteOp, family: Family, dstLen: number, table: number, protocol: number, type: RouteType, b: Buffer, off: number): number {
  b.fill(0, off, off + 28);
  b[off + 4] = op === 'delete' ? RTM_DELROUTE : RTM_NEWROUTE;
  const flags = F_REQUEST | F_ACK | (op === 'delete' ? 0 : F_CREATE | (op === 'replace' ? F_REPLACE : F_EXCL));
  b[off + 6] = flags & 0xff;
  b[off + 7] = flags >> 8;
  const h = off + 16;
  b[h] = AF[family];
  b[h + 1] = dstLen;
  b[h + 4] = table < 256 ? table : 0; // RT_TABLE_UNSPEC; the real id is RTA_TABLE
  b[h + 5] = protocol;
  // iproute2's choice: a unicast route without a gateway is scope link, a local route scope
  // host; throw and unreachable are universe; a delete matches any scope with NOWHERE.
  b[h + 6] = op === 'delete' ? RT_SCOPE_NOWHERE : type === 'unicast' ? RT_SCOPE_LINK : type === 'local' ? RT_SCOPE_HOST : RT_SCOPE_UNIVERSE;
  b[h + 7] = TYPE_NUM[type];
  return h + 12;
}

/**
 * An attribute's header, struct rtattr { u16 len; u16 type }; the value follows
 * (little-endian here, as the kernel's host order on the machines this runs on;
 * addresses in network order).
 */
function attrHeader(b: Buffer, o: number, type: number, len: number): number {
  b[o] = 4 + len;
  b[o + 1] = 0;
  b[o + 2] = type;
  b[o + 3] = 0;
  return o + 4;
}

function u32Attr(b: Buffer, o: number, type: number, v: number): number {
  o = attrHeader(b, o, type, 4);
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = v >>> 24;
  return o + 4;
}

/** The message's length into its header; returns its end. */
function messageEnd(b: Buffer, off: number, o: number): number {
  const len = o - off;
  b[off] = len & 0xff;
  b[off + 1] = len >> 8;
  return o;
}



/** An upper bound of encodeThrow's length. */
export const THROW_MESSAGE_MAX: Record<Family, number> = { 4: 16 + 12 + 8 + 8 + 8, 6: 16 + 12 + 20 + 8 + 8 };

/**
 * Encode throw route i of a set (model/throwSet.ts) into `b` at `off`, straight from its
 * packed destination: the same message encodeRoute writes for that route as a RouteSpec.
 */
export function encodeThrow(op: RouteOp, s: ThrowSet, i: number, b: Buffer, off: number): number {
  let dstLen: number;
  let addr4 = 0;
  let addr6 = 0n;
  if (s.family === 4) {
    const k = s.dsts.key(i);
    dstLen = k % 64;
    addr4 = (k - dstLen) / 64;
  } else {
    const p = s.dsts.prefix(i);
    dstLen = p.len;
    addr6 = p.addr;
  }
  let o = routeHeader(op, s.family, dstLen, s.table, s.protocol, 'throw', b, off);
  if (dstLen > 0 || s.family === 6) {
    const alen = s.family === 4 ? 4 : 16;
    o = attrHeader(b, o, RTA_DST, alen);
    if (s.family === 4) {
      b[o] = addr4 >>> 24;
      b[o + 1] = (addr4 >>> 16) & 255;
      b[o + 2] = (addr4 >>> 8) & 255;
      b[o + 3] = addr4 & 255;
    } else for (let k = 15; k >= 0; k--, addr6 >>= 8n) b[o + k] = Number(addr6 & 255n);
    o += alen;
  }
  o = u32Attr(b, o, RTA_TABLE, s.table);
  o = u32Attr(b, o, RTA_PRIORITY, s.metric);
  return messageEnd(b, off, o);
}

export function errnoName(errno: number): string {
  return errnoNames[errno] ?? `errno ${errno}`;
}
