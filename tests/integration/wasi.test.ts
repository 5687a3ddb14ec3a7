// The datapath as a WASI command: build/wasmap-wasi.wasm runs its switch self-test under
// node:wasi, prints what it did and exits 0; it asks the host for nothing but WASI's
// fd_write, clock_time_get and proc_exit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, openSync, closeSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { WASI } from 'node:wasi';
import { findBuildFile } from '../../src/paths.js';

test('wasmap-wasi.wasm runs its switch self-test under node:wasi and exits 0', async () => {
  const path = findBuildFile('wasmap-wasi.wasm');
  assert.ok(path, 'build/wasmap-wasi.wasm exists (npm run build)');
  const mod = await WebAssembly.compile(readFileSync(path));
  const imports = WebAssembly.Module.imports(mod).map((i) => `${i.module}.${i.name}`).sort();
  assert.deepEqual(imports, ['wasi_snapshot_preview1.clock_time_get', 'wasi_snapshot_preview1.fd_write', 'wasi_snapshot_preview1.proc_exit']);
  const dir = mkdtempSync(join(tmpdir(), 'wasmap-wasi-'));
  const out = join(dir, 'stdout');
  const fd = openSync(out, 'w');
  try {
    const wasi = new WASI({ version: 'preview1', args: ['wasmap-wasi'], env: {}, stdout: fd, returnOnExit: true });
    const inst = await WebAssembly.instantiate(mod, wasi.getImportObject() as WebAssembly.Imports);
    const code = wasi.start(inst);
    closeSync(fd);
    const text = readFileSync(out, 'utf8');
    assert.equal(code, 0, text);
    assert.match(text, /switch with 4 ports, 20000 rounds/);
    const m = /sent (\d+) \+ flood copies (\d+) = received (\d+) \+ drops (\d+)/.exec(text);
    assert.ok(m, text);
    assert.equal(BigInt(m[1]) + BigInt(m[2]), BigInt(m[3]) + BigInt(m[4]));
    assert.ok(BigInt(m[3]) > 1_000_000n);
    assert.match(text, /ok: every frame accounted for, every buffer in its place/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
