// The native host maps a memfd into the shared WebAssembly memory: wasm, JavaScript and the
// fd see the same bytes, the mapping survives memory.grow, and unmapping leaves zeroed pages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readSync, writeSync } from 'node:fs';
import { loadHost, hostMissingReason, requireHost } from '../../src/host.js';

const required = process.env.WASMAP_REQUIRE_NET === '1';
const host = loadHost();
const skip = !host && !required ? `native host not built (${hostMissingReason()})` : false;

// (module (import "env" "memory" (memory 1 1024 shared)) (func (export "load8") (param i32) (result i32) local.get 0 i32.load8_u))
const LOAD8 = Uint8Array.from([0, 97, 115, 109, 1, 0, 0, 0, 1, 6, 1, 96, 1, 127, 1, 127, 2, 17, 1, 3, 101, 110, 118, 6, 109, 101, 109, 111, 114, 121, 2, 3, 1, 128, 8, 3, 2, 1, 0, 7, 9, 1, 5, 108, 111, 97, 100, 56, 0, 0, 10, 9, 1, 7, 0, 32, 0, 45, 0, 0, 11]);

test('memfd mapped into wasm memory is shared both ways and survives grow', { skip }, () => {
  const h = requireHost();
  const mem = new WebAssembly.Memory({ initial: 64, maximum: 1024, shared: true });
  const inst = new WebAssembly.Instance(new WebAssembly.Module(LOAD8), { env: { memory: mem } });
  const load8 = inst.exports.load8 as (a: number) => number;
  const len = 65536, off = 4 * 65536;
  const fd = h.memfdCreate('wasmap-test', len);
  try {
    const pattern = Buffer.alloc(len);
    for (let i = 0; i < len; i++) pattern[i] = (i * 13 + 7) & 255;
    writeSync(fd, pattern, 0, len, 0);
    h.mapFd(new Uint8Array(mem.buffer), off, len, fd, 0);
    const view = new Uint8Array(mem.buffer);
    assert.equal(view[off + 1000], pattern[1000]);
    assert.equal(load8(off + 4321), pattern[4321], 'wasm sees the fd contents');
    view[off + 77] = 0xab;
    const back = Buffer.alloc(1);
    readSync(fd, back, 0, 1, 77);
    assert.equal(back[0], 0xab, 'the fd sees writes made through the memory');
    mem.grow(10);
    assert.equal(new Uint8Array(mem.buffer)[off + 4321], pattern[4321], 'mapping survives grow');
    h.unmap(new Uint8Array(mem.buffer), off, len);
    const after = new Uint8Array(mem.buffer);
    assert.equal(after[off + 4321], 0, 'unmapped span reads zeros');
    after[off + 5] = 9;
    assert.equal(load8(off + 5), 9, 'unmapped span is writable memory again');
  } finally {
    h.closeFd(fd);
  }
});

test('bad arguments are refused with a code', { skip }, () => {
  const h = requireHost();
  const mem = new WebAssembly.Memory({ initial: 16, maximum: 64, shared: true });
  const fd = h.memfdCreate('wasmap-test', 65536);
  try {
    const view = new Uint8Array(mem.buffer);
    assert.throws(() => h.mapFd(view, 100, 65536, fd), { code: 'EINVAL' });
    assert.throws(() => h.mapFd(view, 15 * 65536, 2 * 65536, fd), { code: 'EINVAL' });
    assert.throws(() => h.mapFd(view, 0, 65536, 987654), { code: 'EBADF' });
    assert.throws(() => h.mapFd(new Uint8Array(8) as Uint8Array, 0, 4096, fd), { code: 'EINVAL' });
  } finally {
    h.closeFd(fd);
  }
  assert.throws(() => h.closeFd(fd), { code: 'EBADF' });
  assert.equal(h.pageSize() % 4096, 0);
});
