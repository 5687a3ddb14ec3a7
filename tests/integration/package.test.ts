// The npm package as a user gets it: `npm pack` of this checkout, installed into an empty
// project with no network (`npm install --offline ./wasmap-*.tgz`). Then `npx wasmap demo`
// runs; `import { Vale, Datapath } from 'wasmap'` works and type-checks against the shipped
// .d.ts; `wasmap/browser`, `wasmap/wasm` and `wasmap/wasi` resolve through the exports map;
// the native host was built at install. A second install where the C compiler fails still
// succeeds: a warning that says what to install, and the demo works without the addon.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { findBuildFile } from '../../src/paths.js';
import { loadHost, hostMissingReason } from '../../src/host.js';

const cli = findBuildFile('cli.mjs');
const root = cli ? dirname(dirname(cli)) : '';
const why = !cli ? 'not built' : !existsSync(join(root, 'build/types/index.d.ts')) ? 'no type declarations (npm run build)' : spawnSync('sh', ['-c', 'command -v npm']).status !== 0 ? 'needs npm' : '';
// the installed package builds its native host as this checkout did: without a compiler here
// (no build/wasmap_host.node) that install test cannot expect one (the fallback test still runs)
const noHost = why || (loadHost() ? '' : `the checkout's native host is not built (${hostMissingReason()}): apt-get install build-essential python3`);
const tmp = mkdtempSync(join(tmpdir(), 'wasmap-pack-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// as a user's shell would run them: without this checkout's node_modules/.bin on PATH (under
// `npm test` it comes first, and a dependency there ships an old npm of its own)
const PATH = (process.env.PATH ?? '').split(':').filter((d) => !d.includes('node_modules')).join(':');
function sh(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 180000, env: { ...process.env, PATH, npm_config_update_notifier: 'false', ...env } });
  return { code: r.status, out: `${r.stdout}${r.stderr}`, stdout: r.stdout };
}
function project(name: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, type: 'module', allowScripts: { wasmap: true } }));
  return dir;
}
let tgz = '';

test('npm pack: a tarball with the bundles, the .wasm, the types and the native sources, and nothing else', { skip: why || false, timeout: 120000 }, () => {
  // --ignore-scripts: npm pack would run `prepare` (the whole build); the build is here already
  const r = sh('npm', ['pack', '--ignore-scripts', '--pack-destination', tmp, '--json'], root);
  assert.equal(r.code, 0, r.out);
  const [info] = JSON.parse(r.stdout) as { filename: string; files: { path: string }[] }[];
  tgz = join(tmp, info.filename);
  const paths = info.files.map((f) => f.path);
  for (const f of ['build/cli.mjs', 'build/wasmap.mjs', 'build/runner.mjs', 'build/wasmap.wasm', 'build/wasmap-wasi.wasm', 'build/wasmap.browser.mjs', 'build/types/index.d.ts', 'host-native/binding.gyp', 'host-native/src/io.c', 'src/tools/install-native.mjs', 'package.json', 'README.md']) {
    assert.ok(paths.includes(f), `${f} is in the tarball`);
  }
  for (const p of paths) assert.ok(!/^(tests|assembly|node_modules|build\/tests)\//.test(p) && !p.endsWith('.node'), `${p} does not belong in the package`);
});

test('installed into an empty project offline: npx wasmap demo, import with types, the exports map, the native host built', { skip: noHost || false, timeout: 240000 }, () => {
  assert.ok(tgz, 'the pack test ran first');
  const dir = project('app');
  let r = sh('npm', ['install', '--offline', '--no-audit', '--no-fund', tgz], dir);
  assert.equal(r.code, 0, r.out);
  assert.deepEqual(readdirSync(join(dir, 'node_modules')).filter((d) => !d.startsWith('.')), ['wasmap'], 'no runtime dependencies come along');
  r = sh('npx', ['wasmap', 'demo', '--seconds', '1'], dir);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /every frame accounted for/);
  writeFileSync(join(dir, 'use.mts'), `import { Vale, Datapath, WasmapError } from 'wasmap';
import { EmbeddedSwitch } from 'wasmap/browser';
const dp: Datapath = new Datapath();
const vale = new Vale(dp);
const p = vale.attach('vale0:a');
const n: number = p.index;
export const ok: [typeof EmbeddedSwitch, typeof WasmapError, number] = [EmbeddedSwitch, WasmapError, n];
`);
  // the shipped .d.ts type-check the user's code (this checkout's TypeScript and Node types)
  r = sh(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--lib', 'es2022,dom',
    '--typeRoots', join(root, 'node_modules/@types'), '--types', 'node', 'use.mts'], dir);
  assert.equal(r.code, 0, `tsc: ${r.out}`);
  writeFileSync(join(dir, 'use.mjs'), `import { Vale, Datapath } from 'wasmap';
import * as browser from 'wasmap/browser';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadHost } from 'wasmap';
const vale = new Vale(new Datapath());
const a = vale.attach('vale0:a'), b = vale.attach('vale0:b');
console.log(JSON.stringify({ ports: [a.name, b.name], browser: typeof browser.EmbeddedSwitch,
  wasm: existsSync(fileURLToPath(import.meta.resolve('wasmap/wasm'))), wasi: existsSync(fileURLToPath(import.meta.resolve('wasmap/wasi'))), host: !!loadHost() }));
vale.close();
`);
  r = sh(process.execPath, ['use.mjs'], dir);
  assert.equal(r.code, 0, r.out);
  assert.deepEqual(JSON.parse(r.out.trim().split('\n').pop()!), { ports: ['a', 'b'], browser: 'function', wasm: true, wasi: true, host: true });
});

test('installed where the native host cannot be built: a warning naming what to install, exit 0, the demo works', { skip: why || false, timeout: 240000 }, () => {
  assert.ok(tgz, 'the pack test ran first');
  const dir = project('nocc');
  let r = sh('npm', ['install', '--offline', '--no-audit', '--no-fund', '--foreground-scripts', tgz], dir, { CC: '/bin/false', CXX: '/bin/false' });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /the native host was not built/);
  assert.match(r.out, /apt-get install build-essential/);
  assert.ok(!existsSync(join(dir, 'node_modules/wasmap/build/wasmap_host.node')));
  r = sh('npx', ['wasmap', 'demo', '--seconds', '1'], dir);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /every frame accounted for/);
  r = sh('npx', ['wasmap', 'doctor'], dir);
  assert.match(r.out, /native host: missing/);
});
