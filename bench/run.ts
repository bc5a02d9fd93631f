/**
 * `npm run bench`: runs the benchmarks in network namespaces of their own and prints one
 * markdown report on stdout (progress goes to stderr). A full run also writes it to
 * bench/RESULTS.md. Speed is reported, never asserted.
 *
 *   node dist/bench/run.js [--quick] [--only startup|watcher|apply|throughput[,...]]
 *
 * Root only. Everything is cleaned up on success, on failure and on SIGINT/SIGTERM/SIGHUP.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { applyBench } from './apply.js';
import { machineFacts } from './machine.js';
import { startupBench } from './startup.js';
import { cleanup, lockBench, log, REPO } from './ns.js';
import { throughputBench } from './throughput.js';
import { watcherBench } from './watcher.js';
import { nftBench } from './nft.js';

interface Bench {
  name: string;
  aliases: string[];
  what: string;
  run: (o: { quick: boolean }) => Promise<string>;
}

const BENCHES: Bench[] = [
  { name: 'startup', aliases: ['s', 'up'], what: 'S. start-up: no-op wgsplit up vs node -e 0 (issue 14)', run: startupBench },
  { name: 'watcher', aliases: ['a', 'watch'], what: 'A. watcher latency and idle cost (issue 3)', run: watcherBench },
  { name: 'apply', aliases: ['b', 'bulk'], what: 'B. bulk apply vs ip -batch (issue 4)', run: applyBench },
  { name: 'throughput', aliases: ['c', 'packet', 'tput'], what: 'C. per-packet cost, TCP throughput (issue 4)', run: throughputBench },
  { name: 'nft', aliases: ['d'], what: 'D. nftables table as objects: full load, no-op, one-line change (issue 9)', run: nftBench },
];

const USAGE = `usage: node dist/bench/run.js [--quick] [--only NAME[,NAME...]]
  --quick        fewer repetitions and sizes (a smoke run, ~2 minutes)
  --only NAME    run only these: ${BENCHES.map((b) => `${b.name} (${b.what})`).join('; ')}
A full run (no --quick, no --only) also writes bench/RESULTS.md.`;

function parse(argv: string[]): { quick: boolean; only: Bench[] } {
  const { values } = parseArgs({ args: argv, options: { quick: { type: 'boolean' }, only: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  const names = (values.only ?? []).flatMap((s) => s.split(',')).map((s) => s.trim().toLowerCase()).filter(Boolean);
  const only = names.map((n) => {
    const b = BENCHES.find((x) => x.name === n || x.aliases.includes(n));
    if (!b) throw new Error(`unknown benchmark "${n}" (${BENCHES.map((x) => x.name).join(', ')})`);
    return b;
  });
  return { quick: !!values.quick, only: only.length ? BENCHES.filter((b) => only.includes(b)) : BENCHES };
}

async function main(): Promise<number> {
  let opts;
  try {
    opts = parse(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: needs root (it creates network namespaces)\n');
    return 2;
  }
  try {
    lockBench();
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    return 2;
  }
  const started = Date.now();
  const loadStart = os.loadavg();
  const partial = opts.quick || opts.only.length !== BENCHES.length;
  const sections: string[] = [];
  let failed = 0;
  for (const b of opts.only) {
    log(`--- ${b.what}`);
    const mark = cleanup.mark();
    const t0 = Date.now();
    try {
      sections.push(await b.run({ quick: opts.quick }) + `\n\n_(${b.name}: ${((Date.now() - t0) / 1000).toFixed(0)} s)_`);
    } catch (e) {
      if (cleanup.aborted) throw e;
      failed++;
      log(`${b.name} failed: ${(e as Error).stack}`);
      sections.push(`## ${b.what}\n\n**failed**: ${(e as Error).message.split('\n').slice(0, 5).join(' / ')}`);
    } finally {
      await cleanup.unwind(mark);
    }
  }
  const facts = await machineFacts();
  const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(' / ');
  const loadEnd = os.loadavg();
  facts.push(
    `load average (1 / 5 / 15 min): ${la(loadStart)} at the start, ${la(loadEnd)} at the end` +
      (Math.max(loadStart[0], loadEnd[0]) > os.availableParallelism() ? ' (**above nproc: other work competed for the CPUs; expect noise**)' : ''),
  );
  const report = [
    '# wgsplit benchmark',
    '',
    `Measured in one run${opts.quick ? ' (**--quick**: fewer repetitions and sizes, a smoke run)' : ''} by \`npm run bench\` on ${new Date(started).toISOString().slice(0, 16).replace('T', ' ')} UTC, ` +
      `in ${((Date.now() - started) / 1000).toFixed(0)} s. Everything ran in network namespaces created for it. Numbers are measurements, not pass/fail.`,
    '',
    ...facts.map((f) => `- ${f}`),
    '',
    sections.join('\n\n'),
    '',
  ].join('\n');
  process.stdout.write(report);
  if (!partial && !failed) {
    writeFileSync(join(REPO, 'bench/RESULTS.md'), report);
    log('report written to bench/RESULTS.md');
  } else log(`bench/RESULTS.md not written (${failed ? 'a benchmark failed' : 'partial run'})`);
  return failed ? 1 : 0;
}

let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    log(`${sig}: cleaning up`);
    void cleanup.run().finally(() => process.exit(128 + ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const)[sig]));
  });
}

main().then(
  async (code) => {
    await cleanup.run();
    process.exit(code);
  },
  async (e) => {
    if (!stopping) log(`error: ${(e as Error).stack ?? e}`);
    await cleanup.run();
    if (!stopping) process.exit(1);
  },
);
