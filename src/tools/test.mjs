#!/usr/bin/env node
// `npm test`: the AssemblyScript specs (as-pect), then the node:test suites (unit, integration,
// fuzz) from their esbuild bundles, then one summary line: "tests: N passed, N failed".
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
let passed = 0, failed = 0, problems = [];

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
  }
}

for (const p of problems) console.log(`tests: problem: ${p}`);
console.log(`tests: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
