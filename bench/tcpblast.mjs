#!/usr/bin/env node
// A minimal TCP throughput pair for the benchmark (no dependencies).
//   tcpblast.mjs server HOST PORT       prints "ready"; per connection: counts bytes until
//                                       the sender ends, answers with the count, closes
//   tcpblast.mjs client HOST PORT SECS  sends as fast as the socket takes it for SECS,
//                                       prints {"bytes":..,"seconds":..,"MBps":..}
// Throughput = bytes the server received / (connect -> server's answer), so nothing still
// sitting in buffers counts.
import net from 'node:net';

const [mode, host, portText, secsText] = process.argv.slice(2);
const port = Number(portText);

if (mode === 'server') {
  const srv = net.createServer((sock) => {
    let bytes = 0;
    sock.on('data', (d) => (bytes += d.length));
    sock.on('end', () => sock.end(`${bytes}\n`));
    sock.on('error', () => {});
  });
  srv.listen(port, host, () => console.log('ready'));
} else if (mode === 'client') {
  const secs = Number(secsText ?? 3);
  const chunk = Buffer.alloc(1 << 20, 0x61);
  const sock = net.connect({ host, port });
  sock.setNoDelay(true);
  let t0 = 0;
  let answer = '';
  sock.on('connect', () => {
    t0 = performance.now();
    const deadline = t0 + secs * 1000;
    const pump = () => {
      while (performance.now() < deadline) {
        if (!sock.write(chunk)) return void sock.once('drain', pump);
      }
      sock.end();
    };
    pump();
  });
  sock.on('data', (d) => (answer += d));
  sock.on('end', () => {
    const seconds = (performance.now() - t0) / 1000;
    const bytes = Number(answer.trim());
    console.log(JSON.stringify({ bytes, seconds, MBps: bytes / seconds / 1e6 }));
  });
  sock.on('error', (e) => {
    console.error(`tcpblast: ${e.message}`);
    process.exit(1);
  });
} else {
  console.error('usage: tcpblast.mjs server HOST PORT | client HOST PORT SECS');
  process.exit(2);
}
