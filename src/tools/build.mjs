#!/usr/bin/env node
// Builds everything into build/: the datapath (asc), the native host (node-gyp) and the C
// reference switch (cc), the CLI bundle and the test bundles (esbuild).
// Usage: node src/tools/build.mjs [wasm] [native] [js] [examples] [types]   (no argument: all)
import { execFileSync } from 'node:child_process';
import { mkdirSync, copyFileSync, existsSync, readdirSync, chmodSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = join(root, 'build');
const want = new Set(process.argv.slice(2));
const all = want.size === 0;
mkdirSync(out, { recursive: true });

function run(cmd, args, opts = {}) {
  const t = Date.now();
  execFileSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  console.log(`build: ${cmd} ${args.slice(0, 3).join(' ')}${args.length > 3 ? ' …' : ''} (${Date.now() - t} ms)`);
}
const bin = (name) => join(root, 'node_modules', '.bin', name);

if (all || want.has('wasm')) {
  run(bin('asc'), ['assembly/index.ts', '--target', 'release']);
  run(bin('asc'), ['assembly/index.ts', '--target', 'debug']);
  // the same datapath as a WASI command with a self-test (@assemblyscript/wasi-shim)
  run(bin('asc'), ['assembly/wasi.ts', '--config', 'asconfig.wasi.json', '--target', 'release']);
}

if (all || want.has('examples')) {
  // the example forwarding functions: examples/fn/*.ts → build/examples/*.wasm
  run(process.execPath, [join(root, 'src/tools/build-examples.mjs')]);
}

if (all || want.has('native')) {
  // Node's headers ship with the machine's node (/usr/include/node); node-gyp would otherwise
  // try to download them, which a machine without internet access cannot do.
  const gypArgs = ['rebuild', '-C', 'host-native'];
  if (existsSync('/usr/include/node/node_api.h')) gypArgs.push('--nodedir=/usr');
  const npmGyp = process.env.npm_config_node_gyp;
  if (npmGyp) run(process.execPath, [npmGyp, ...gypArgs]);
  else run('npm', ['exec', '--yes', '--', 'node-gyp', ...gypArgs]);
  copyFileSync(join(root, 'host-native/build/Release/wasmap_host.node'), join(out, 'wasmap_host.node'));
  // the native references the benchmarks compare against
  run(process.env.CC || 'cc', ['-O2', '-Wall', '-o', join(out, 'vale-ref'), 'host-native/ref/vale_ref.c']);
  run(process.env.CC || 'cc', ['-O2', '-Wall', '-o', join(out, 'tapfwd'), 'host-native/ref/tapfwd.c']);
}

if (all || want.has('types')) {
  // the library's type declarations for the package (exports "." and "./browser")
  run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.types.json']);
}

if (all || want.has('js')) {
  const esbuild = await import('esbuild');
  const common = { bundle: true, platform: 'node', format: 'esm', target: 'node20', sourcemap: 'linked', logLevel: 'warning',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" } };
  await esbuild.build({ ...common, entryPoints: { cli: 'src/cli/main.ts', wasmap: 'src/index.ts', runner: 'src/runner-worker.ts', 'io-worker': 'src/io-worker.ts', cni: 'src/cni/main.ts' }, outdir: out, outExtension: { '.js': '.mjs' },
    banner: { js: '#!/usr/bin/env node\n' + common.banner.js } });
  chmodSync(join(out, 'cli.mjs'), 0o755);
  chmodSync(join(out, 'cni.mjs'), 0o755);
  const tests = [];
  for (const dir of ['tests/unit', 'tests/integration', 'tests/fuzz']) {
    if (!existsSync(join(root, dir))) continue;
    for (const f of readdirSync(join(root, dir))) if (f.endsWith('.test.ts')) tests.push(join(dir, f));
  }
  // micro-benchmarks (not tests: run by hand, e.g. node build/tests/perf/vhost-micro.mjs)
  if (existsSync(join(root, 'tests/perf'))) for (const f of readdirSync(join(root, 'tests/perf'))) if (f.endsWith('.ts')) tests.push(join('tests/perf', f));
  await esbuild.build({ ...common, entryPoints: tests, outdir: join(out, 'tests'), outbase: 'tests', outExtension: { '.js': '.mjs' }, external: ['playwright-core'] });
  // the host-neutral loader for browsers and other hosts, and the browser test page
  const web = { bundle: true, platform: 'browser', format: 'esm', target: 'es2022', logLevel: 'warning' };
  await esbuild.build({ ...web, entryPoints: { 'wasmap.browser': 'src/embed/index.ts' }, outdir: out, outExtension: { '.js': '.mjs' } });
  await esbuild.build({ ...web, entryPoints: { page: 'tests/browser/page.ts', worker: 'tests/browser/worker.ts' }, outdir: join(out, 'browser'), outExtension: { '.js': '.mjs' } });
  copyFileSync(join(root, 'tests/browser/index.html'), join(out, 'browser/index.html'));
  if (existsSync(join(out, 'wasmap.wasm'))) copyFileSync(join(out, 'wasmap.wasm'), join(out, 'browser/wasmap.wasm'));
  console.log(`build: esbuild cli, library, browser bundle and ${tests.length} test bundles → ${relative(root, out)}/`);
}
