#!/usr/bin/env node
// Sends a known amount of UDP traffic to an echo server, for the traffic counters' tests:
// COUNT datagrams of SIZE payload bytes, one at a time (the next after the answer or
// after a timeout), so nothing is lost to a full queue. Prints one line:
//   sent COUNT SIZE answered N last ANSWER
// (ANSWER is the echo's line: the source address it saw). Exit 0 when every datagram
// was answered, 1 otherwise.
//
//   node probe-bytes.mjs HOST PORT COUNT SIZE [--timeout ms]
//
// Plain node, no dependencies.
import dgram from 'node:dgram';
import net from 'node:net';

const argv = process.argv.slice(2);
let timeoutMs = 1000;
const pos = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--timeout') timeoutMs = Number(argv[++i]);
  else pos.push(argv[i]);
}
const [host, portText, countText, sizeText] = pos;
const port = Number(portText);
const count = Number(countText);
const size = Number(sizeText);
if (pos.length !== 4 || !Number.isInteger(port) || !Number.isInteger(count) || !Number.isInteger(size) || size < 1 || size > 1400) {
  process.stderr.write('usage: node probe-bytes.mjs HOST PORT COUNT SIZE(1-1400) [--timeout ms]\n');
  process.exit(2);
}
const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
const payload = Buffer.alloc(size, 0x61);
let answered = 0;
let last = '';
let waiting;
sock.on('message', (msg) => {
  last = msg.toString('utf8').split('\n')[0].trim();
  answered++;
  waiting?.();
});
sock.on('error', () => waiting?.());
await new Promise((resolve, reject) => sock.connect(port, host, (e) => (e ? reject(e) : resolve())));
for (let i = 0; i < count; i++) {
  await new Promise((resolve) => {
    const t = setTimeout(resolve, timeoutMs);
    waiting = () => {
      clearTimeout(t);
      resolve();
    };
    sock.send(payload, (e) => e && resolve());
  });
}
process.stdout.write(`sent ${count} ${size} answered ${answered} last ${last || '-'}\n`, () => process.exit(answered === count ? 0 : 1));
