/** Facts about the machine and the build, printed at the top of the report. */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { REPO, run } from './ns.js';

async function firstLine(file: string, args: string[]): Promise<string> {
  try {
    const r = await run(file, args, { reject: false });
    return (String(r.stdout).trim() || String(r.stderr).trim()).split('\n')[0] || '?';
  } catch {
    return '?';
  }
}

export async function machineFacts(): Promise<string[]> {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? '?';
  const memKiB = Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1]);
  const commit = await firstLine('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']);
  const dirty = String((await run('git', ['-C', REPO, 'status', '--porcelain', '--', 'src'], { reject: false })).stdout).trim();
  return [
    `nproc: ${await firstLine('nproc', [])}`,
    `CPU: ${model}`,
    `memory: ${(memKiB / 1024 / 1024).toFixed(1)} GiB`,
    `kernel: ${os.release()}`,
    `node: ${process.version}`,
    `iproute2: ${await firstLine('ip', ['-V'])}`,
    `iptables: ${await firstLine('iptables', ['-V'])}; nft: ${await firstLine('nft', ['--version'])}`,
    `wgsplit: commit ${commit}${dirty ? ' (src/ has uncommitted changes)' : ''}, dist/ built by \`npm run bench\``,
  ];
}
