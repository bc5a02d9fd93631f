#!/usr/bin/env node
// Sandbox echo server: answers every TCP connection / UDP datagram with one line,
// the remote address it saw (IPv4-mapped "::ffff:" stripped), then closes.
//
//   node echo.mjs tcp|udp ADDR PORT [tcp|udp ADDR PORT ...]
//
// Several listeners can share one process (one node start per namespace keeps the
// sandbox fast). Prints "ready" on stdout once every listener is bound; exits 1 if
// any fails to bind. Plain node, no dependencies.
import net from 'node:net';
import dgram from 'node:dgram';

const args = process.argv.slice(2);
if (args.length === 0 || args.length % 3 !== 0) {
  process.stderr.write('usage: node echo.mjs tcp|udp ADDR PORT [tcp|udp ADDR PORT ...]\n');
  process.exit(2);
}

const seen = (addr) => (addr ?? '').replace(/^::ffff:/i, '');

function fail(spec, err) {
  process.stderr.write(`echo: ${spec}: ${err.code ?? ''} ${err.message}\n`);
  process.exit(1);
}

function listenTcp(addr, port) {
  return new Promise((resolve) => {
    const server = net.createServer((sock) => {
      sock.on('error', () => {});
      sock.end(`${seen(sock.remoteAddress)}\n`);
    });
    server.on('error', (err) => fail(`tcp ${addr} ${port}`, err));
    // '::' alone would also take IPv4 (dual stack) and collide with a 0.0.0.0 listener.
    server.listen({ host: addr, port, ipv6Only: net.isIPv6(addr) }, resolve);
  });
}

function listenUdp(addr, port) {
  return new Promise((resolve) => {
    const sock = dgram.createSocket({ type: net.isIPv6(addr) ? 'udp6' : 'udp4', ipv6Only: net.isIPv6(addr) });
    sock.on('error', (err) => fail(`udp ${addr} ${port}`, err));
    sock.on('message', (_msg, rinfo) => {
      sock.send(`${seen(rinfo.address)}\n`, rinfo.port, rinfo.address, () => {});
    });
    sock.bind(port, addr, resolve);
  });
}

const pending = [];
for (let i = 0; i < args.length; i += 3) {
  const [proto, addr, portText] = args.slice(i, i + 3);
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`${proto} ${addr} ${portText}`, new Error('bad port'));
  if (proto === 'tcp') pending.push(listenTcp(addr, port));
  else if (proto === 'udp') pending.push(listenUdp(addr, port));
  else fail(`${proto} ${addr} ${portText}`, new Error('protocol must be tcp or udp'));
}
await Promise.all(pending);
process.stdout.write('ready\n');
process.on('SIGTERM', () => process.exit(0));
