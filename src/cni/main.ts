// `wasmap-cni`: the CNI plugin's executable. A runtime finds plugins by their `type` in
// CNI_PATH, so install it there as `wasmap` (a link to build/cni.mjs, or a two-line script
// that runs it with this Node): see docs/cni.md.
import { readFileSync } from 'node:fs';
import { cni } from './plugin.js';

let stdin = '';
try { stdin = readFileSync(0, 'utf8'); } catch { /* VERSION may come with no stdin */ }
const { out, code } = await cni(process.env, stdin);
if (out) process.stdout.write(out + '\n');
process.exitCode = code;
