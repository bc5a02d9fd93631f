#!/usr/bin/env node
// Sandbox probe: connects (TCP) or sends one datagram (UDP) and prints the line the
// echo server answered (the source address it saw), exit 0. On error or timeout it
// prints "ERR <code>" (e.g. ERR ETIMEDOUT, ERR ECONNREFUSED, ERR ENETUNREACH) on
// stdout and exits 1.
//
//   node probe.mjs tcp|udp HOST PORT [--timeout ms] [--bind ADDR]
//
// Plain node, no dependencies.
import net from 'node:net';
import dgram from 'node:dgram';

const positional = [];
let timeoutMs = 2000;
let bind;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--timeout') timeoutMs = Number(argv[++i]);
  else if (a === '--bind') bind = argv[++i];
  else positional.push(a);
}
const [proto, host, portText] = positional;
const port = Number(portText);
if (positional.length !== 3 || !['tcp', 'udp'].includes(proto) || !Number.isInteger(port) || !(timeoutMs > 0)) {
  process.stderr.write('usage: node probe.mjs tcp|udp HOST PORT [--timeout ms] [--bind ADDR]\n');
  process.exit(2);
}

let done = false;
function finish(line, code) {
  if (done) return;
  done = true;
  process.stdout.write(`${line}\n`, () => process.exit(code));
}
const ok = (text) => finish(text.split('\n')[0].trim(), 0);
const err = (e) => finish(`ERR ${e?.code ?? e?.message ?? 'EUNKNOWN'}`, 1);
setTimeout(() => finish('ERR ETIMEDOUT', 1), timeoutMs).unref();

if (proto === 'tcp') {
  let buf = '';
  const sock = net.connect({ host, port, ...(bind ? { localAddress: bind } : {}) });
  sock.setEncoding('utf8');
  sock.on('data', (d) => {
    buf += d;
    if (buf.includes('\n')) ok(buf);
  });
  sock.on('end', () => (buf ? ok(buf) : err({ code: 'EEMPTY' })));
  sock.on('error', err);
} else {
  const v6 = net.isIPv6(host) || (bind !== undefined && net.isIPv6(bind));
  const sock = dgram.createSocket(v6 ? 'udp6' : 'udp4');
  sock.on('error', err);
  sock.on('message', (msg) => ok(msg.toString('utf8')));
  const go = () =>
    // connect() so ICMP errors (port/host unreachable) surface as ECONNREFUSED etc.
    sock.connect(port, host, (e) => {
      if (e) return err(e);
      sock.send('probe\n', (e2) => e2 && err(e2));
    });
  if (bind) sock.bind(0, bind, go);
  else go();
}
