#!/usr/bin/env node
// `npm run fuzz -- [--scale N] [--ops N] [--seed S] [--kills K] [--only NAME,...]`: every fuzz
// suite in tests/fuzz at full length, then the passthrough kill test with K guests killed
// mid-stream (default 100; needs the native host). `npm test` runs the same suites at scale 1.
//   --scale N   multiplies each hostile-peer suite's work (default 50; WASMAP_FUZZ_SCALE)
//   --ops N     the ring/pipe fuzzer's operations (default 1000000; WASMAP_FUZZ_OPS)
//   --seed S    one seed for every suite (WASMAP_FUZZ_SEED), to replay a failure
// Each suite prints one line `fuzz NAME: seed=… ops=… longest_round_ms=…`; they are repeated at
// the end as the run's report.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values } = parseArgs({
  options: {
    scale: { type: 'string', default: '50' }, ops: { type: 'string', default: '1000000' }, seed: { type: 'string' },
    kills: { type: 'string', default: '100' }, only: { type: 'string' }, help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  console.log('usage: npm run fuzz -- [--scale N] [--ops N] [--seed S] [--kills K] [--only pipe,offload-hostile,...]');
  process.exit(0);
}
for (const k of ['scale', 'ops', 'kills']) {
  if (!/^\d+$/.test(values[k]) || Number(values[k]) < 1) { console.error(`fuzz: --${k} must be a positive whole number, not '${values[k]}'`); process.exit(2); }
}
const env = { ...process.env, WASMAP_FUZZ_OPS: values.ops, WASMAP_FUZZ_SCALE: values.scale };
if (values.seed) env.WASMAP_FUZZ_SEED = values.seed;

const b = spawnSync(process.execPath, [join(root, 'src/tools/build.mjs'), 'js'], { stdio: 'inherit', cwd: root });
if (b.status !== 0) process.exit(b.status ?? 1);

const dir = join(root, 'build/tests/fuzz');
const only = values.only ? new Set(values.only.split(',')) : null;
const suites = (existsSync(dir) ? readdirSync(dir) : []).filter((f) => f.endsWith('.test.mjs')).map((f) => f.slice(0, -'.test.mjs'.length))
  .filter((n) => !only || only.has(n)).sort();
if (suites.length === 0) { console.error(`fuzz: no suites${only ? ` named ${values.only}` : ''} in build/tests/fuzz`); process.exit(2); }

// run one suite with its output shown as it comes, keeping its `fuzz NAME:` report lines
function runSuite(file, extraEnv = {}, extraArgs = []) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--test', '--test-reporter=spec', ...extraArgs, file], { cwd: root, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = [];
    let rest = '';
    child.stdout.on('data', (d) => {
      process.stdout.write(d);
      rest += d;
      const parts = rest.split('\n');
      rest = parts.pop();
      for (const l of parts) { const m = l.match(/(fuzz [\w-]+: .*)$/); if (m) lines.push(m[1]); }
    });
    child.on('close', (code) => resolve({ code, lines }));
  });
}

const report = [];
let failed = 0;
for (const name of suites) {
  const t = Date.now();
  console.log(`\nfuzz: ${name} (scale ${values.scale})`);
  const r = await runSuite(join(dir, `${name}.test.mjs`));
  report.push(...r.lines, `fuzz ${name}: ${r.code === 0 ? 'passed' : `FAILED (exit ${r.code})`} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  if (r.code !== 0) failed++;
}
if (!only || only.has('passthrough-kill')) {
  const t = Date.now();
  console.log(`\nfuzz: passthrough kill test (${values.kills} guests killed mid-stream)`);
  const k = await runSuite(join(root, 'build/tests/integration/passthrough.test.mjs'), { WASMAP_PT_KILLS: values.kills }, ['--test-name-pattern=kill a sending guest']);
  report.push(`fuzz passthrough-kill: ${k.code === 0 ? 'passed' : `FAILED (exit ${k.code})`} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  if (k.code !== 0) failed++;
}
console.log('\nfuzz report:');
for (const l of report) console.log(`  ${l}`);
process.exit(failed ? 1 : 0);
