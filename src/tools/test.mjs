#!/usr/bin/env node
// `npm test`: the AssemblyScript specs (as-pect), then the node:test suites (unit, integration,
// fuzz) from their esbuild bundles, then the summary: "tests: N passed, N failed, N skipped" and,
// when tests were skipped for want of Debian tools, the one apt-get line that brings them.
// Options: --only assembly|node   --grep PATTERN (node suites whose file name contains it)
import { spawn } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : null;
const grep = args.includes('--grep') ? args[args.indexOf('--grep') + 1] : null;

function run(cmd, argv, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, argv, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (d) => { text += d; process.stdout.write(d); });
    child.on('close', (code) => resolve({ code, text }));
  });
}
const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');
let passed = 0, failed = 0, skipped = 0, problems = [];
const skipReasons = new Map(); // reason -> tests skipped for it

if (only !== 'node') {
  const r = await run(join(root, 'node_modules/.bin/asp'), ['--config', 'as-pect.config.js', '--no-logo'], { FORCE_COLOR: '0' });
  const m = strip(r.text).match(/\[Tests\]:\s*(\d+)\s*\/\s*(\d+)/);
  if (!m) { failed++; problems.push(`as-pect did not report a summary (exit ${r.code})`); }
  else { passed += +m[1]; failed += +m[2] - +m[1]; if (r.code !== 0 && +m[1] === +m[2]) { failed++; problems.push(`as-pect exited ${r.code}`); } }
}

if (only !== 'assembly') {
  const files = [];
  for (const dir of ['unit', 'integration', 'fuzz']) {
    const d = join(root, 'build/tests', dir);
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d).sort()) if (f.endsWith('.test.mjs') && (!grep || f.includes(grep))) files.push(join(d, f));
  }
  if (files.length === 0) { failed++; problems.push('no node test bundles in build/tests: run `npm run build` first'); }
  else {
    const r = await run(process.execPath, ['--test', '--test-reporter=tap', '--test-concurrency=1', ...files]);
    const pass = strip(r.text).match(/^# pass (\d+)/m), fail = strip(r.text).match(/^# fail (\d+)/m);
    if (!pass || !fail) { failed++; problems.push(`node --test did not report counts (exit ${r.code})`); }
    else { passed += +pass[1]; failed += +fail[1]; if (r.code !== 0 && +fail[1] === 0) { failed++; problems.push(`node --test exited ${r.code}`); } }
    const skip = strip(r.text).match(/^# skipped (\d+)/m);
    if (skip) skipped += +skip[1];
    for (const m of strip(r.text).matchAll(/^\s*ok \d+ - .*# SKIP (.*)$/gm)) skipReasons.set(m[1], (skipReasons.get(m[1]) ?? 0) + 1);
  }
}

for (const p of problems) console.log(`tests: problem: ${p}`);
if (skipped) {
  // the skip reasons name their packages as "apt-get install A B …": one line brings them all
  const pkgs = new Set();
  for (const why of skipReasons.keys()) for (const m of why.matchAll(/apt-get install(?:\s+-[\w-]+)*((?:\s+[a-z0-9][a-z0-9.+-]*)+)/g)) for (const p of m[1].trim().split(/\s+/)) pkgs.add(p);
  console.log(`tests: skipped ${skipped}:`);
  for (const [why, n] of [...skipReasons].sort((a, b) => b[1] - a[1])) console.log(`  ${String(n).padStart(3)} × ${why}`);
  if (pkgs.size) console.log(`tests: to run them: apt-get install --no-install-recommends ${[...pkgs].sort().join(' ')}   (as root; see .ci/run)`);
}
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed === 0 ? 0 : 1);
