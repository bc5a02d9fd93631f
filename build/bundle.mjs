/**
 * `npm run build`, step 2 (after tsc): the CLI as one bundled file with a V8 code cache.
 *
 *   dist/src/cli/wgsplit.cjs   every module of the CLI and its dependencies, one CommonJS
 *                              file (esbuild); netlink's native addon stays in node_modules
 *   dist/src/cli/main.cjs      the launcher (`bin`, hooks/install.sh): compiles the bundle
 *                              with vm.Script and V8's code cache, then runs it
 *   dist/src/cli/main.js       the same launcher as an ES module, where tsc put the CLI
 *                              (replacing tsc's file; the tests run this path)
 *   dist/src/cli/wgsplit.cjs.cache   the code cache, written by the launcher itself
 *
 * WHY: a cold `wgsplit up` from wg-quick's PostUp spent ~150 ms over node's own start-up,
 * most of it before any work: resolving and loading ~60 module files, node's ESM loader
 * running cjs-module-lexer over every CommonJS file reachable from `import 'netlink'`
 * (nl80211 and ifla structs, 400 KB: ~90 ms here) to find named exports, and compiling
 * zod, the TOML parser and our own code on every run. One file skips the resolution,
 * require() skips the lexer, and the code cache skips most compiling. Node 20 has no
 * module compile cache (module.enableCompileCache is 22.1+), but vm.Script takes V8's
 * cachedData; that needs a script, not an ES module, hence CommonJS.
 *
 * The cache: V8 rejects one made by another node/V8 version or with other flags
 * (script.cachedDataRejected), so a stale cache only costs the compile it would have
 * saved. The launcher writes a fresh one (atomically, tmp + rename) at exit when there was
 * none or it was rejected, after a run of a command that works on the kernel, so it also
 * holds the functions such a run compiled lazily; where it may not write (a user without
 * write access) it just runs.
 *
 * netlink's JavaScript is bundled too, but not its index (it pulls in nl80211 and every
 * struct definition): see NETLINK_SHIM; its native addon stays in node_modules.
 */
import { build } from 'esbuild';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/src/cli`;

// The names wgsplit uses, each from the file that defines it (bundled, and initialised only
// when first used: rules need rt.js and its struct tables, routes only raw.js). Any other
// name loads the package's index at run time: correct, only slower.
const NETLINK_SHIM = `
const pick = {
  RawNetlinkSocket: () => require('netlink/dist/raw.js').RawNetlinkSocket,
  createRtNetlink: () => require('netlink/dist/rt/rt.js').createRtNetlink,
  FlagsNew: () => require('netlink/dist/constants.js').FlagsNew,
};
const runtimeRequire = require;
module.exports = new Proxy({}, { get: (_t, name) => name === '__esModule' ? false : pick[name] ? pick[name]() : runtimeRequire('netlink')[name] });
`;

const netlinkShim = {
  name: 'netlink-shim',
  setup(b) {
    b.onResolve({ filter: /^netlink$/ }, () => ({ path: 'netlink', namespace: 'netlink-shim' }));
    b.onLoad({ filter: /.*/, namespace: 'netlink-shim' }, () => ({ contents: NETLINK_SHIM, loader: 'js', resolveDir: root }));
    // netlink finds its native addon relative to its own files; from inside the bundle that
    // is the installed package's directory.
    b.onLoad({ filter: /netlink[\\/]dist[\\/]raw\.js$/ }, async (a) => {
      const text = readFileSync(a.path, 'utf8');
      const from = "require('node-gyp-build')(__dirname + '/..')";
      if (!text.includes(from)) throw new Error(`netlink/dist/raw.js no longer loads its addon with ${from}: update build/bundle.mjs`);
      return { contents: text.replace(from, "require('node-gyp-build')(require('path').dirname(require.resolve('netlink/package.json')))"), loader: 'js' };
    });
  },
};

// A script run by vm.Script has no loader for import(): a dynamic import of node's own
// modules (wg.ts: child_process only when asked) becomes a lazily required CommonJS module.
const dynamicBuiltins = {
  name: 'dynamic-builtins',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (a) => (a.kind === 'dynamic-import' ? { path: a.path, namespace: 'builtin-cjs' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'builtin-cjs' }, (a) => ({ contents: `module.exports = require(${JSON.stringify(a.path)});`, loader: 'js' }));
  },
};

// The launcher's body, shared by both launchers: needs readFileSync, renameSync,
// writeFileSync, vm, FILE (the bundle), DIR, MAIN_URL and REQUIRE in scope.
const LAUNCH = `
const KERNEL_COMMANDS = new Set(['up', 'down', 'apply', 'diff', 'status', 'explain', 'export', 'watch']);
const cacheFile = FILE + '.cache';
let cachedData;
try {
  cachedData = readFileSync(cacheFile);
} catch {
  /* first run, or not built yet */
}
const wrapper = '(function (require, module, exports, __filename, __dirname, __wgsplitMainUrl) {' + readFileSync(FILE, 'utf8') + '\\n})';
const script = new vm.Script(wrapper, { filename: FILE, cachedData });
// Only a run that works on the kernel writes the cache: it holds what that run compiled,
// and --version, --help or check would leave out the code every PostUp runs.
const kernelRun = process.argv.slice(2).some((a) => KERNEL_COMMANDS.has(a));
if ((!cachedData || script.cachedDataRejected) && kernelRun) {
  process.once('exit', () => {
    try {
      const tmp = cacheFile + '.' + process.pid;
      writeFileSync(tmp, script.createCachedData());
      renameSync(tmp, cacheFile);
    } catch {
      /* read-only install, or not ours to write: run without */
    }
  });
}
const mod = { exports: {} };
script.runInThisContext()(REQUIRE, mod, mod.exports, FILE, DIR, MAIN_URL);
`;

// main.cjs: what \`bin\` and hooks/install.sh point at. CommonJS, because an ES module as
// the entry point starts node's ESM loader first (~5-10 ms of every PostUp here).
const LAUNCHER_CJS = `#!/usr/bin/env node
'use strict';
// Written by build/bundle.mjs: runs the bundled CLI (wgsplit.cjs) with V8's code cache.
const { readFileSync, renameSync, writeFileSync } = require('node:fs');
const vm = require('node:vm');
const FILE = require('node:path').join(__dirname, 'wgsplit.cjs');
const DIR = __dirname;
const MAIN_URL = require('node:url').pathToFileURL(__filename).href;
const REQUIRE = require;
${LAUNCH}`;

// main.js: the same as an ES module, where tsc put the CLI (the tests run this path).
const LAUNCHER = `#!/usr/bin/env node
// Written by build/bundle.mjs: runs the bundled CLI (wgsplit.cjs) with V8's code cache.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
const FILE = fileURLToPath(new URL('./wgsplit.cjs', import.meta.url));
const DIR = fileURLToPath(new URL('.', import.meta.url));
const MAIN_URL = import.meta.url;
const REQUIRE = createRequire(FILE);
${LAUNCH}`;

rmSync(`${outdir}/chunks`, { recursive: true, force: true });
const r = await build({
  entryPoints: [`${root}src/cli/main.ts`],
  outfile: `${outdir}/wgsplit.cjs`,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  plugins: [netlinkShim, dynamicBuiltins],
  // resolved at run time by the bundle's require (raw.js, see netlinkShim)
  external: ['netlink/package.json'],
  // The launcher passes main.js's URL: main.ts compares it with argv[1] and finds
  // package.json relative to it.
  define: { 'import.meta.url': '__wgsplitMainUrl' },
  legalComments: 'none',
  // A third smaller (1.2 MB -> 0.85 MB): less to read, hash and deserialize on every start
  // (the no-op `up` measured ~5 ms faster). Identifiers stay, so stack traces keep names.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
  metafile: true,
});
// main.ts's shebang is no JavaScript inside the launcher's function wrapper.
const bundle = `${outdir}/wgsplit.cjs`;
const code = readFileSync(bundle, 'utf8').replace(/^#!.*\n/, '');
const dynamic = /(^|[^\w$.])import\(\s*["'`]([^"'`]*)/m.exec(code);
if (dynamic) throw new Error(`bundle: a dynamic import() of ${dynamic[2]} is left in wgsplit.cjs; vm.Script cannot run it (bundle it, or add it to dynamicBuiltins)`);
writeFileSync(bundle, code);
chmodSync(bundle, 0o644);
writeFileSync(`${outdir}/main.js`, LAUNCHER);
chmodSync(`${outdir}/main.js`, 0o755);
writeFileSync(`${outdir}/main.cjs`, LAUNCHER_CJS);
chmodSync(`${outdir}/main.cjs`, 0o755);
rmSync(`${outdir}/wgsplit.cjs.cache`, { force: true });
rmSync(`${outdir}/main.js.map`, { force: true });
const sizes = Object.entries(r.metafile.outputs).map(([f, o]) => `${f.replace(/.*\//, '')} ${(o.bytes / 1024).toFixed(0)} KiB`);
process.stdout.write(`bundle: ${sizes.join(', ')}\n`);
