#!/usr/bin/env node
// `npm run fuzz -- --ops N [--seed S] [--kills K]`: the ring/pipe fuzz test at full length, then
// the passthrough kill test with K guests killed mid-stream (default 100; needs the native host).
import { spawnSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values } = parseArgs({ options: { ops: { type: 'string', default: '1000000' }, seed: { type: 'string' }, kills: { type: 'string', default: '100' } } });
const env = { ...process.env, WASMAP_FUZZ_OPS: values.ops };
if (values.seed) env.WASMAP_FUZZ_SEED = values.seed;
spawnSync(process.execPath, [join(root, 'src/tools/build.mjs'), 'js'], { stdio: 'inherit', cwd: root });
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', join(root, 'build/tests/fuzz/pipe.test.mjs')], { stdio: 'inherit', cwd: root, env });
if (r.status !== 0) process.exit(r.status ?? 1);
const k = spawnSync(process.execPath, ['--test', '--test-reporter=spec', '--test-name-pattern=kill a sending guest', join(root, 'build/tests/integration/passthrough.test.mjs')],
  { stdio: 'inherit', cwd: root, env: { ...process.env, WASMAP_PT_KILLS: values.kills } });
process.exit(k.status ?? 1);
