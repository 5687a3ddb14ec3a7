#!/usr/bin/env node
// `npm install wasmap` runs this: build the native host (host-native/, N-API, node-gyp) for
// this machine's Node. It is optional: the embedded switch, the demo, pkt-gen on VALE ports and
// the benchmarks run without it; TAP, AF_PACKET, AF_XDP and vhost-user ports and passthrough
// guest processes need it. A machine without a C compiler, python3 or the libraries gets a
// warning that says what to install, and the install goes on (exit 0). In a checkout of the
// repository `npm ci` builds everything through `prepare` (src/tools/build.mjs): nothing here.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
if (existsSync(join(root, 'assembly')) && existsSync(join(root, 'src/tools/build.mjs'))) process.exit(0); // a checkout
const out = join(root, 'build', 'wasmap_host.node');
const loads = () => { try { createRequire(import.meta.url)(out); return true; } catch { return false; } };
if (existsSync(out) && loads()) process.exit(0);

const gyp = process.env.npm_config_node_gyp; // npm's own node-gyp, given to install scripts
const args = ['rebuild', '-C', join(root, 'host-native')];
if (existsSync('/usr/include/node/node_api.h')) args.push('--nodedir=/usr'); // no download of headers
try {
  if (gyp) execFileSync(process.execPath, [gyp, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  else execFileSync('npm', ['exec', '--yes', '--', 'node-gyp', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  mkdirSync(dirname(out), { recursive: true });
  copyFileSync(join(root, 'host-native/build/Release/wasmap_host.node'), out);
  if (!loads()) throw new Error('built, but it does not load');
  console.log('wasmap: native host built (TAP, AF_PACKET, AF_XDP and vhost-user ports available)');
} catch (e) {
  const why = String(e.stderr ?? e.message ?? e).trim().split('\n').filter(Boolean).slice(-3).join(' / ');
  console.warn(`wasmap: the native host was not built (${why.slice(0, 400)}).
wasmap: the embedded switch, the demo and the benchmarks work without it; kernel and VM ports need it.
wasmap: to build it: apt-get install build-essential python3 libxdp-dev libbpf-dev, then npm rebuild wasmap (wasmap doctor says what is missing)`);
}
