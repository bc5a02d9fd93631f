/**
 * `npm run build`, step 2: bundle the CLI into dist/src/cli/main.js (overwriting what tsc
 * emitted there; `bin`, hooks/install.sh and the tests keep using that path), with the
 * commands that load heavy modules (watch: chokidar, execa; explain; export) split into
 * chunks loaded only when run.
 *
 * WHY: a cold `wgsplit up` from wg-quick's PostUp spent ~150 ms over node's own start-up,
 * most of it before any work: resolving and loading ~60 module files, and node's ESM loader
 * running cjs-module-lexer over every CommonJS file reachable from `import 'netlink'`
 * (nl80211 and ifla structs, 400 KB: ~90 ms here) to find named exports. One file skips the
 * resolution; loading netlink through require() skips the lexer.
 *
 * netlink stays outside the bundle: it loads its native addon relative to its own
 * __dirname (node-gyp-build). The `netlink` import is replaced by a shim that require()s
 * only the parts a name needs (see NETLINK_SHIM).
 */
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/src/cli`;

// Lazy per export name: the names wgsplit uses come from the small files that define them;
// any other name loads the package's index (correct, only slower).
const NETLINK_SHIM = `
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const where = { RawNetlinkSocket: 'netlink/dist/raw.js', createRtNetlink: 'netlink/dist/rt/rt.js', FlagsNew: 'netlink/dist/constants.js' };
export default new Proxy({}, { get: (_t, name) => require(where[name] ?? 'netlink')[name] });
`;

const netlinkShim = {
  name: 'netlink-shim',
  setup(b) {
    b.onResolve({ filter: /^netlink$/ }, () => ({ path: 'netlink', namespace: 'netlink-shim' }));
    b.onLoad({ filter: /.*/, namespace: 'netlink-shim' }, () => ({ contents: NETLINK_SHIM, loader: 'js', resolveDir: root }));
  },
};

// Chunks of an earlier build (their names carry a content hash).
rmSync(`${outdir}/chunks`, { recursive: true, force: true });

const r = await build({
  entryPoints: { main: `${root}src/cli/main.ts` },
  outdir,
  bundle: true,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['netlink/*'],
  plugins: [netlinkShim],
  // CommonJS dependencies (@iarna/toml) call require() for node's own modules.
  banner: { js: "import { createRequire as __wgsplitRequire } from 'node:module';\nconst require = __wgsplitRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
  allowOverwrite: true,
});
const sizes = Object.entries(r.metafile.outputs).map(([f, o]) => `${f.replace(/.*\//, '')} ${(o.bytes / 1024).toFixed(0)} KiB`);
process.stdout.write(`bundle: ${sizes.join(', ')}\n`);
