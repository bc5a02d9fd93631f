/**
 * A second thread that only calls sendmsg on a netlink socket of its own and hands back
 * every datagram the kernel answers with. Why: rtnetlink does its work inside sendmsg, in
 * the sending thread (netlink_unicast_kernel runs rtnetlink_rcv synchronously), so with
 * one thread the kernel's ~3 us per route and our encoding of the next messages take turns.
 * At 100k routes that was ~330 ms of kernel time plus ~120 ms of encoding; on a second
 * thread the two overlap (DESIGN.md: the kernel's own cost is the floor).
 *
 * The thread knows nothing of routes: bytes in, datagrams out. Sequence numbers, ACKs and
 * errors stay with RawRoutes, which parses what comes back exactly as from its own socket.
 * A worker thread shares the process's network namespace, so its socket talks to the same
 * kernel tables.
 */
import { createRequire } from 'node:module';
import type { Worker } from 'node:worker_threads';

// Loaded on first use: requiring node:worker_threads costs ~2.5 ms, and every `wgsplit up`
// from wg-quick would pay it for a thread only large batches start.
const load = createRequire(import.meta.url);

// CommonJS, evaluated in the worker: no file of its own to find after bundling.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { RawNetlinkSocket } = require(workerData.raw);
const sock = new RawNetlinkSocket(0, { recvBufferSize: 16 << 20, sendBufferSize: 4 << 20 });
// Answers are batched per turn of the event loop: an error for each of 100k messages must
// not be 100k messages between threads.
let pending = [];
const flush = () => {
  const all = Buffer.concat(pending);
  pending = [];
  const ab = all.buffer.slice(all.byteOffset, all.byteOffset + all.length);
  parentPort.postMessage(ab, [ab]);
};
sock.on('message', (buf) => {
  if (pending.push(buf) === 1) setImmediate(flush);
});
sock.on('error', (e) => parentPort.postMessage({ error: String((e && e.message) || e) }));
parentPort.on('message', (m) => {
  if (m === 'close') {
    sock.close();
    parentPort.close();
    return;
  }
  sock.send(Buffer.from(m.b, 0, m.n), {}, (err) => err && parentPort.postMessage({ error: err.message }));
});
parentPort.postMessage('ready');
`;

export class SendThread {
  private readonly worker: Worker;
  /** true once the worker's socket is open; until then the caller sends itself */
  ready = false;
  /** set when the thread failed: nothing more is sent through it */
  error?: Error;
  private closing = false;

  constructor(onDatagrams: (buf: Buffer) => void, onError: (e: Error) => void) {
    const raw = load.resolve('netlink/dist/raw.js');
    const { Worker: W } = load('node:worker_threads') as typeof import('node:worker_threads');
    this.worker = new W(WORKER, { eval: true, workerData: { raw } });
    this.worker.unref();
    this.worker.on('message', (m: unknown) => {
      if (m === 'ready') this.ready = true;
      else if (m instanceof ArrayBuffer) onDatagrams(Buffer.from(m));
      else this.fail(new Error(`send thread: ${(m as { error?: string }).error ?? 'unknown message'}`), onError);
    });
    this.worker.on('error', (e) => this.fail(e, onError));
    // Gone without being asked (killed, out of memory): what it held is lost, the batch fails.
    this.worker.on('exit', (code) => this.closing || this.fail(new Error(`send thread: exited (${code})`), onError));
  }

  private fail(e: Error, onError: (e: Error) => void): void {
    const wasReady = this.ready;
    this.ready = false;
    this.error ??= e;
    // Before it took anything, the caller just keeps sending itself.
    if (wasReady) onError(e);
  }

  /** Send `n` bytes of `ab` (its ownership moves to the thread). */
  send(ab: ArrayBuffer, n: number): void {
    this.worker.postMessage({ b: ab, n }, [ab]);
  }

  /** Keep the process alive while messages are in flight (or not). */
  hold(on: boolean): void {
    if (on) this.worker.ref();
    else this.worker.unref();
  }

  close(): void {
    this.closing = true;
    this.ready = false;
    this.worker.postMessage('close');
    this.worker.unref();
  }
}
