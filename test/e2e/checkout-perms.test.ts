/**
 * `npm test` from a checkout only root can read (issue 8, item 1): a clone in /root, or in
 * a `mktemp -d` (mode 0700). Probes that run as another user (setpriv --reuid) used to be
 * started from the checkout and failed with "Cannot find module .../probe.mjs".
 *
 * This builds exactly that situation: the compiled sandbox helper and the sandbox scripts
 * are copied into a 0700 directory (the layout the helper expects: dist/test/helpers and
 * test/sandbox under one root), and a child process using that copy brings a sandbox up
 * and probes as uid 1000 and uid 65534. Needs root.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ADDR, SANDBOX_DIR } from '../helpers/sandbox.js';

const execFileP = promisify(execFile);
const PREFIX = 'h8a';
const WG = 'h8a0';
const HELPER = fileURLToPath(new URL('../helpers/sandbox.js', import.meta.url));

test('probes as other users work when the checkout is readable only by root', async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'wgsplit-private-checkout-'));
  chmodSync(root, 0o700);
  try {
    mkdirSync(path.join(root, 'dist/test/helpers'), { recursive: true });
    cpSync(HELPER, path.join(root, 'dist/test/helpers/sandbox.js'));
    cpSync(SANDBOX_DIR, path.join(root, 'test/sandbox'), { recursive: true });
    const script = path.join(root, 'dist/run.mjs');
    writeFileSync(
      script,
      `import { createSandbox, ADDR, PORT } from './test/helpers/sandbox.js';
const sb = await createSandbox(${JSON.stringify(PREFIX)}, { wgIface: ${JSON.stringify(WG)} });
try {
  const out = {
    uid1000: await sb.probe('host', 'tcp', ADDR.internet, PORT.http, { uid: 1000 }),
    uid65534: await sb.probe('host', 'udp', ADDR.internet, PORT.dns, { uid: 65534 }),
    root: await sb.probe('host', 'tcp', ADDR.internet, PORT.http),
    many: (await sb.exec('host', [process.execPath, ${JSON.stringify(path.join(root, 'test/sandbox/probe-many.mjs'))}, 'tcp:' + ADDR.internet + ':' + PORT.https], { uid: 1000 })).stdout.trim(),
  };
  console.log(JSON.stringify(out));
} finally {
  await sb.destroy();
}
`,
    );
    // The child's working directory is the private checkout too, as under `npm test`.
    const r = await execFileP(process.execPath, [script], { cwd: root, encoding: 'utf8', timeout: 90_000 });
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}');
    t.deepEqual(out, { uid1000: ADDR.routerWan, uid65534: ADDR.routerWan, root: ADDR.routerWan, many: ADDR.routerWan });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
