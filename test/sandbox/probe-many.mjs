#!/usr/bin/env node
// Several sandbox probes at once, in one process (one node start-up instead of one per
// probe): each PROTO:HOST:PORT is probed like probe.mjs does (TCP connect / one UDP
// datagram), all in parallel, and one line per probe is printed in argument order: the
// answer (the source address the echo server saw) or "ERR <code>". Always exit 0.
//
//   node probe-many.mjs [--timeout ms] tcp:20.0.0.10:443 udp:[2a00:1::10]:53 ...
//
// Plain node, no dependencies.
import net from 'node:net';
import dgram from 'node:dgram';

let timeoutMs = 2000;
const specs = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--timeout') timeoutMs = Number(argv[++i]);
  else specs.push(argv[i]);
}

function parse(spec) {
  const m = /^(tcp|udp):(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(spec);
  if (!m) {
    process.stderr.write(`bad probe "${spec}" (PROTO:HOST:PORT, IPv6 in brackets)\n`);
    process.exit(2);
  }
  return { proto: m[1], host: m[2] ?? m[3], port: Number(m[4]) };
}

function probe({ proto, host, port }) {
  return new Promise((resolve) => {
    let done = false;
    let sock;
    const finish = (line) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock?.destroy?.();
      try {
        if (proto === 'udp') sock?.close();
      } catch {
        /* already closed */
      }
      resolve(line);
    };
    const ok = (text) => finish(text.split('\n')[0].trim());
    const err = (e) => finish(`ERR ${e?.code ?? e?.message ?? 'EUNKNOWN'}`);
    const timer = setTimeout(() => finish('ERR ETIMEDOUT'), timeoutMs);
    if (proto === 'tcp') {
      let buf = '';
      sock = net.connect({ host, port });
      sock.setEncoding('utf8');
      sock.on('data', (d) => {
        buf += d;
        if (buf.includes('\n')) ok(buf);
      });
      sock.on('end', () => (buf ? ok(buf) : err({ code: 'EEMPTY' })));
      sock.on('error', err);
    } else {
      sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
      sock.on('error', err);
      sock.on('message', (msg) => ok(msg.toString('utf8')));
      // connect() so ICMP errors (port/host unreachable) surface as ECONNREFUSED etc.
      sock.connect(port, host, (e) => {
        if (e) return err(e);
        sock.send('probe\n', (e2) => e2 && err(e2));
      });
    }
  });
}

const answers = await Promise.all(specs.map(parse).map(probe));
process.stdout.write(answers.join('\n') + '\n', () => process.exit(0));
