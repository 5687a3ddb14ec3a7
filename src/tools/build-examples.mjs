#!/usr/bin/env node
// Builds the example forwarding functions (docs/forwarding-functions.md): every
// examples/fn/NAME.ts → build/examples/NAME.wasm (and NAME.wat beside it, for reading). The
// shared code in examples/fn/lib/ is compiled into each module that imports it.
// The test fixtures in tests/fixtures/fn/ (functions that fail on purpose) are built the same
// way into build/fixtures/fn/.
// Usage: node src/tools/build-examples.mjs [NAME …]   (no argument: all of them)
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dirs = [['examples/fn', join(root, 'build', 'examples')], ['tests/fixtures/fn', join(root, 'build', 'fixtures', 'fn')]];
for (const [, out] of dirs) mkdirSync(out, { recursive: true });

// No imports at all (the stub runtime never allocates through an import; `--use abort=` drops
// env.abort), a memory of its own (not imported, not shared) that starts at 16 pages — enough
// for every example's static tables (the largest, the router's, take about 9) — and may grow to
// the 256 pages the loader allows. --config names examples/fn/asconfig.json, which sets nothing:
// without it asc would read the datapath's asconfig.json (imported shared memory, threads).
const flags = ['--config', 'examples/fn/asconfig.json', '--runtime', 'stub', '--use', 'abort=', '-O3', '--noAssert',
  '--initialMemory', '16', '--maximumMemory', '256'];

const want = process.argv.slice(2);
// [name, source dir, output dir] of every module to build
const jobs = dirs.flatMap(([dir, out]) => readdirSync(join(root, dir)).filter((f) => f.endsWith('.ts')).sort()
  .map((f) => [f.slice(0, -3), dir, out])).filter(([n]) => want.length === 0 || want.includes(n));
const names = jobs.map(([n]) => n);
for (const n of want) if (!names.includes(n)) { console.error(`build-examples: no examples/fn/${n}.ts or tests/fixtures/fn/${n}.ts`); process.exit(1); }

const asc = join(root, 'node_modules', '.bin', 'asc');
const t0 = Date.now();
const compile = ([n, dir, out]) => promisify(execFile)(asc,
  [`${dir}/${n}.ts`, '--outFile', join(out, `${n}.wasm`), '--textFile', join(out, `${n}.wat`), ...flags], { cwd: root });
// as many compilers at once as there are CPUs
const results = new Array(names.length);
let next = 0;
await Promise.all(Array.from({ length: Math.min(availableParallelism(), names.length) }, async () => {
  while (next < names.length) {
    const i = next++;
    results[i] = await compile(jobs[i]).then((value) => ({ status: 'fulfilled', value }), (reason) => ({ status: 'rejected', reason }));
  }
}));
let failed = 0;
results.forEach((r, i) => {
  const [n, dir, out] = jobs[i];
  if (r.status === 'fulfilled') {
    if (r.value.stderr) process.stderr.write(r.value.stderr);
    console.log(`build: ${dir}/${n}.wasm ${statSync(join(out, `${n}.wasm`)).size} bytes`);
  } else {
    failed++;
    process.stderr.write(r.reason.stderr || String(r.reason));
    console.error(`build: ${dir}/${n}.wasm FAILED`);
  }
});
console.log(`build: ${names.length - failed} of ${names.length} forwarding functions → build/examples/, build/fixtures/fn/ (${Date.now() - t0} ms)`);
process.exit(failed ? 1 : 0);
