// hooks/install.sh staged into a temporary root (DESTDIR): every file lands where the
// README says, and the installed command runs from its own copy of the dependencies.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

test('install.sh stages the command, man pages, completion, rt_protos name and systemd unit', (t) => {
  const dest = mkdtempSync(join(tmpdir(), 'wgsplit-install-'));
  try {
    execFileSync('bash', [join(ROOT, 'hooks/install.sh')], { env: { ...process.env, DESTDIR: dest, PREFIX: '/usr/local' }, stdio: 'pipe' });
    for (const f of [
      'usr/local/share/man/man8/wgsplit.8',
      'usr/local/share/man/man5/wgsplit.toml.5',
      'usr/share/bash-completion/completions/wgsplit',
      'usr/share/zsh/vendor-completions/_wgsplit',
      'etc/iproute2/rt_protos.d/wgsplit.conf',
      'etc/systemd/system/wgsplit.service',
      'usr/local/lib/wgsplit/node_modules/netlink/package.json',
    ]) {
      t.true(existsSync(join(dest, f)), f);
    }
    t.false(existsSync(join(dest, 'usr/local/lib/wgsplit/node_modules/ava')), 'dev dependencies are not installed');
    t.is(readlinkSync(join(dest, 'usr/local/bin/wgsplit')), '/usr/local/lib/wgsplit/dist/src/cli/main.cjs');
    const out = execFileSync(join(dest, 'usr/local/lib/wgsplit/dist/src/cli/main.cjs'), ['--version'], { encoding: 'utf8' });
    t.regex(out, /^wgsplit \d+\.\d+\.\d+/);
  } finally {
    rmSync(dest, { recursive: true, force: true });
  }
});
