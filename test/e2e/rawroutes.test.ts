// The bulk route path (src/kernel/rawRoutes.ts) asks for an ACK only on the last message of
// each send and relies on the kernel answering every failed request with NLMSG_ERROR anyway.
// That is the kernel's behaviour, so it is checked on the kernel, in a namespace of its own:
// every error lands on the right message, across send boundaries, and nothing is lost.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const NS = `wgrr-${process.pid}`;
const RAW = fileURLToPath(new URL('../../src/kernel/rawRoutes.js', import.meta.url));
let dir: string;

test.before(async () => {
  await run('ip', ['netns', 'add', NS]);
  dir = mkdtempSync(path.join(tmpdir(), 'wgsplit-raw-'));
});
test.after.always(async () => {
  await run('ip', ['netns', 'del', NS]).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

async function inNs(script: string): Promise<number[][]> {
  const file = path.join(dir, `s${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(file, `import { RawRoutes } from ${JSON.stringify(RAW)};\nconst raw = new RawRoutes();\nconst out = [];\n${script}\nraw.close();\nconsole.log(JSON.stringify(out));\n`);
  const r = await run('ip', ['netns', 'exec', NS, process.execPath, file]);
  return JSON.parse(r.stdout);
}

const dst = (i: number) => `30.${i >> 8}.${i & 255}.0/24`;

test.serial('errors reach the right message across sends; successes stay silent and all are applied', async (t) => {
  // 300 routes in sends of 128: the existing ones (every third) must fail with EEXIST.
  const [first, second] = await inNs(`
    const mk = (op, i) => raw.encode(op, { family: 4, table: 77, type: 'throw', dst: \`30.\${i >> 8}.\${i & 255}.0/24\`, metric: 0, protocol: 87 }, () => undefined);
    out.push(await raw.execute(Array.from({ length: 300 }, (_, i) => i).filter((i) => i % 3 === 0).map((i) => mk('add', i)), 128));
    out.push(await raw.execute(Array.from({ length: 300 }, (_, i) => mk('add', i)), 128));
  `);
  t.true(first.every((e) => e === 0), 'the first batch succeeds');
  t.is(second.length, 300);
  second.forEach((e, i) => t.is(e, i % 3 === 0 ? 17 : 0, `message ${i}`));
  const shown = (await run('ip', ['netns', 'exec', NS, 'ip', 'route', 'show', 'table', '77'])).stdout.trim().split('\n');
  t.is(shown.length, 300);
  t.true(shown.includes(`throw ${dst(299)} proto 87 `) || shown.some((l) => l.startsWith(`throw ${dst(299)} `)));
});

test.serial('deleting routes that are not there reports ESRCH for exactly those', async (t) => {
  const [res] = await inNs(`
    const mk = (i) => raw.encode('delete', { family: 4, table: 77, type: 'throw', dst: \`30.\${i >> 8}.\${i & 255}.0/24\`, metric: 0, protocol: 87 }, () => undefined);
    out.push(await raw.execute([5, 1000, 6, 1001, 7].map(mk), 2));
  `);
  t.deepEqual(res, [0, 3, 0, 3, 0]);
  const left = (await run('ip', ['netns', 'exec', NS, 'ip', 'route', 'show', 'table', '77'])).stdout.trim().split('\n');
  t.is(left.length, 297);
});

test.serial('a batch big enough for the send thread: it takes over from this thread, errors still land on the right message', async (t) => {
  // 30,000 routes (above THREAD_MIN): the first sends go out from this thread while the
  // second one starts, the rest through it. Every seventh route exists already (EEXIST).
  const [pre, res, sent] = await inNs(`
    const dst = (i) => (40 + (i >> 16)) + '.' + ((i >> 8) & 255) + '.' + (i & 255) + '.0/24';
    const mk = (i) => raw.encode('add', { family: 4, table: 78, type: 'throw', dst: dst(i), metric: 0, protocol: 87 }, () => undefined);
    out.push(await raw.execute(Array.from({ length: 30000 }, (_, i) => i).filter((i) => i % 7 === 0).map(mk), 128));
    out.push(await raw.execute(Array.from({ length: 30000 }, (_, i) => mk(i)), 128));
    out.push([raw.threadSent]);
  `);
  t.true(pre.every((e) => e === 0));
  t.is(res.length, 30000);
  const wrong = res.map((e, i) => [i, e]).filter(([i, e]) => e !== (i % 7 === 0 ? 17 : 0));
  t.deepEqual(wrong.slice(0, 5), [], 'each EEXIST on its own message, nothing else failed');
  t.true(sent[0] > 10000, `the send thread carried most of the batch (${sent[0]} messages)`);
  const shown = (await run('ip', ['netns', 'exec', NS, 'ip', 'route', 'show', 'table', '78'], { maxBuffer: 64 << 20 })).stdout.trim().split('\n');
  t.is(shown.length, 30000, 'every route is in the table');
});
