// The native host maps a memfd into the shared WebAssembly memory: wasm, JavaScript and the
// fd see the same bytes, the mapping survives memory.grow, and unmapping leaves zeroed,
// writable pages. Bad arguments are refused with a code, and leave the memory as it was.
// Real system calls, no mocks; skipped only when the addon is not built and
// WASMAP_REQUIRE_NET is not 1 (then a missing addon fails every test instead).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHost, hostMissingReason, requireHost, type NativeHost } from '../../src/host.js';
import { findBuildFile } from '../../src/paths.js';

const required = process.env.WASMAP_REQUIRE_NET === '1';
const host = loadHost();
const skip = !host && !required ? `native host unavailable: ${hostMissingReason()}` : false;

const WASM_PAGE = 65536;

// A module importing the shared memory, assembled by hand:
//   (module (import "env" "memory" (memory 1 1024 shared))
//     (func (export "load8") (param i32) (result i32) local.get 0 i32.load8_u)
//     (func (export "store8") (param i32 i32) local.get 0 local.get 1 i32.store8))
const vec = (items: number[][]): number[] => [items.length, ...items.flat()]; // counts < 128: one LEB byte
const str = (s: string): number[] => [s.length, ...Buffer.from(s)];
const section = (id: number, body: number[]): number[] => [id, body.length, ...body]; // bodies < 128 bytes
const MODULE = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm, version 1
  ...section(1, vec([[0x60, 1, 0x7f, 1, 0x7f], [0x60, 2, 0x7f, 0x7f, 0]])), // types: (i32)->i32, (i32 i32)->()
  ...section(2, vec([[...str('env'), ...str('memory'), 0x02, 0x03, 1, 0x80, 0x08]])), // memory, flags max|shared, 1..1024
  ...section(3, vec([[0], [1]])), // two functions of types 0 and 1
  ...section(7, vec([[...str('load8'), 0x00, 0], [...str('store8'), 0x00, 1]])),
  ...section(10, vec([
    [7, 0, 0x20, 0, 0x2d, 0, 0, 0x0b], // no locals; local.get 0; i32.load8_u align=0 offset=0; end
    [9, 0, 0x20, 0, 0x20, 1, 0x3a, 0, 0, 0x0b], // local.get 0; local.get 1; i32.store8; end
  ])),
]);

interface Wasm { mem: WebAssembly.Memory; load8(addr: number): number; store8(addr: number, v: number): void }
function instantiate(mem = new WebAssembly.Memory({ initial: 64, maximum: 1024, shared: true })): Wasm {
  const inst = new WebAssembly.Instance(new WebAssembly.Module(MODULE), { env: { memory: mem }, wasmap: { fn_lookup: () => -1 } });
  const { load8, store8 } = inst.exports as { load8: (a: number) => number; store8: (a: number, v: number) => void };
  return { mem, load8, store8 };
}

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 13 + seed + (i >> 8)) & 255;
  return b;
}

/** A memfd holding `content`, closed after `body` whatever happens. */
function withMemfd(h: NativeHost, content: Buffer, body: (fd: number) => void): void {
  const fd = h.memfdCreate('wasmap-test', content.length);
  try {
    assert.equal(writeSync(fd, content, 0, content.length, 0), content.length);
    body(fd);
  } finally {
    h.closeFd(fd);
  }
}

function readAt(fd: number, pos: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  assert.equal(readSync(fd, b, 0, len, pos), len);
  return b;
}

const bytes = (mem: WebAssembly.Memory, off: number, len: number): Buffer => Buffer.from(mem.buffer, off, len);

test('the addon loads and describes itself', { skip }, () => {
  const h = requireHost();
  assert.equal(hostMissingReason(), null);
  assert.match(h.version(), /^wasmap_host \d+\.\d+\.\d+/);
  const page = h.pageSize();
  assert.ok(page >= 4096 && (page & (page - 1)) === 0 && WASM_PAGE % page === 0, `page size ${page}`);
});

test('a memfd mapped into the shared wasm memory: JS, wasm and the fd see the same bytes', { skip }, () => {
  const h = requireHost();
  const w = instantiate();
  const off = 4 * WASM_PAGE, len = 2 * WASM_PAGE;
  const view = new Uint8Array(w.mem.buffer);
  view[off - 1] = 0x11; // neighbours of the span must not change
  view[off + len] = 0x22;
  const pat = pattern(len, 7);
  withMemfd(h, pat, (fd) => {
    h.mapFd(view, off, len, fd, 0);
    assert.ok(bytes(w.mem, off, len).equals(pat), 'JS sees the fd contents over the whole span');
    for (const i of [0, 1, 4321, WASM_PAGE - 1, WASM_PAGE, len - 1]) assert.equal(w.load8(off + i), pat[i], `wasm sees byte ${i}`);
    assert.equal(view[off - 1], 0x11);
    assert.equal(view[off + len], 0x22);

    view[off + 77] = 0xab;
    assert.equal(readAt(fd, 77, 1)[0], 0xab, 'the fd sees a write made through the JS view');
    w.store8(off + WASM_PAGE + 5, 0xcd);
    assert.equal(readAt(fd, WASM_PAGE + 5, 1)[0], 0xcd, 'the fd sees a write made by wasm');
    writeSync(fd, Buffer.from([0xee, 0xef]), 0, 2, 9000);
    assert.equal(view[off + 9000], 0xee, 'JS sees a write made through the fd');
    assert.equal(w.load8(off + 9001), 0xef, 'wasm sees a write made through the fd');
  });
});

test('the mapping survives memory.grow', { skip }, () => {
  const h = requireHost();
  const w = instantiate();
  const off = 8 * WASM_PAGE, len = WASM_PAGE;
  const pat = pattern(len, 3);
  withMemfd(h, pat, (fd) => {
    h.mapFd(new Uint8Array(w.mem.buffer), off, len, fd);
    const before = w.mem.buffer.byteLength;
    assert.equal(w.mem.grow(10), 64);
    assert.equal(w.mem.buffer.byteLength, before + 10 * WASM_PAGE);
    assert.ok(bytes(w.mem, off, len).equals(pat), 'a view on the grown buffer still sees the fd');
    assert.equal(w.load8(off + 1234), pat[1234]);
    w.store8(off + 99, 0x5a);
    assert.equal(readAt(fd, 99, 1)[0], 0x5a, 'writes still reach the fd after grow');
    // the new pages are ordinary memory
    const grown = new Uint8Array(w.mem.buffer);
    grown[before + 3] = 7;
    assert.equal(w.load8(before + 3), 7);
  });
});

test('fdOffset maps a later part of the fd; one memfd mapped twice aliases', { skip }, () => {
  const h = requireHost();
  const w = instantiate();
  const pat = pattern(2 * WASM_PAGE, 11);
  withMemfd(h, pat, (fd) => {
    const view = new Uint8Array(w.mem.buffer);
    const a = 16 * WASM_PAGE, b = 20 * WASM_PAGE;
    h.mapFd(view, a, WASM_PAGE, fd, WASM_PAGE);
    assert.ok(bytes(w.mem, a, WASM_PAGE).equals(pat.subarray(WASM_PAGE)), 'the second page of the fd');
    h.mapFd(view, b, WASM_PAGE, fd, WASM_PAGE);
    w.store8(a + 10, 0x99);
    assert.equal(view[b + 10], 0x99, 'two spans over the same fd pages are one memory');
    assert.equal(readAt(fd, WASM_PAGE + 10, 1)[0], 0x99);
    assert.ok(readAt(fd, 0, WASM_PAGE).equals(pat.subarray(0, WASM_PAGE)), 'the first page of the fd is untouched');
  });
});

test('the mapping outlives closing the fd', { skip }, () => {
  const h = requireHost();
  const w = instantiate();
  const off = 2 * WASM_PAGE;
  const pat = pattern(WASM_PAGE, 5);
  withMemfd(h, pat, (fd) => h.mapFd(new Uint8Array(w.mem.buffer), off, WASM_PAGE, fd));
  assert.ok(bytes(w.mem, off, WASM_PAGE).equals(pat));
  w.store8(off, 1);
  assert.equal(w.load8(off), 1);
});

test('unmap puts zeroed, writable, private memory back', { skip }, () => {
  const h = requireHost();
  const w = instantiate();
  const off = 4 * WASM_PAGE, len = 2 * WASM_PAGE;
  const pat = pattern(len, 9);
  withMemfd(h, pat, (fd) => {
    const view = new Uint8Array(w.mem.buffer);
    view[off - 1] = 0x11;
    view[off + len] = 0x22;
    h.mapFd(view, off, len, fd);
    assert.equal(w.load8(off + 4321), pat[4321]);
    h.unmap(new Uint8Array(w.mem.buffer), off, len);
    assert.ok(bytes(w.mem, off, len).equals(Buffer.alloc(len)), 'the span reads zeros');
    assert.equal(w.load8(off + 4321), 0, 'wasm reads zeros too');
    view[off + 5] = 9;
    assert.equal(w.load8(off + 5), 9, 'JS writes land in the memory');
    w.store8(off + len - 1, 8);
    assert.equal(view[off + len - 1], 8, 'wasm writes land in the memory');
    assert.ok(readAt(fd, 0, len).equals(pat), 'the fd no longer sees the memory');
    assert.equal(view[off - 1], 0x11);
    assert.equal(view[off + len], 0x22);
  });
});

test('bad arguments are refused with a code and leave the memory as it was', { skip }, () => {
  const h = requireHost();
  const w = instantiate(new WebAssembly.Memory({ initial: 16, maximum: 64, shared: true }));
  const view = new Uint8Array(w.mem.buffer);
  const end = view.byteLength;
  const before = pattern(end, 1);
  view.set(before);
  const dir = mkdtempSync(join(tmpdir(), 'wasmap-host-'));
  const ro = join(dir, 'ro');
  writeFileSync(ro, Buffer.alloc(WASM_PAGE));
  const roFd = openSync(ro, 'r');
  const nullFd = openSync('/dev/null', 'r+');
  try {
    withMemfd(h, Buffer.alloc(WASM_PAGE), (fd) => {
      const refused = (f: () => void, code: string, msg: RegExp) =>
        assert.throws(f, (e: unknown) => {
          assert.ok(e instanceof Error, 'a JS Error');
          assert.equal((e as Error & { code?: unknown }).code, code, e.message);
          assert.match(e.message, msg);
          return true;
        });
      refused(() => h.mapFd(view, 100, WASM_PAGE, fd), 'EINVAL', /multiples of the \d+-byte host page/);
      refused(() => h.mapFd(view, 0, 100, fd), 'EINVAL', /multiples of the/);
      refused(() => h.mapFd(view, 0, 0, fd), 'EINVAL', /length must be > 0/);
      refused(() => h.mapFd(view, 15 * WASM_PAGE, 2 * WASM_PAGE, fd), 'EINVAL', /beyond the \d+-byte view; grow the memory/);
      refused(() => h.mapFd(view, -WASM_PAGE, WASM_PAGE, fd), 'EINVAL', /offset must be a whole number/);
      refused(() => h.mapFd(view, NaN, WASM_PAGE, fd), 'EINVAL', /offset must be a whole number/);
      refused(() => h.mapFd(view, 0, WASM_PAGE, fd, 100), 'EINVAL', /fdOffset 100 must be a multiple/);
      refused(() => h.mapFd(view, 0, 2 * WASM_PAGE, fd), 'EINVAL', /too short .*ftruncate it/);
      refused(() => h.mapFd(view, 0, WASM_PAGE, fd, WASM_PAGE), 'EINVAL', /too short/);
      refused(() => h.mapFd(view, 0, WASM_PAGE, 987654), 'EBADF', /pass an open descriptor/);
      refused(() => h.mapFd(view, 0, WASM_PAGE, nullFd), 'ENODEV', /cannot be memory-mapped/);
      refused(() => h.mapFd(view, 0, WASM_PAGE, roFd), 'EACCES', /read-write/);
      refused(() => h.mapFd(new Float64Array(w.mem.buffer) as unknown as Uint8Array, 0, WASM_PAGE, fd), 'EINVAL', /Uint8Array/);
      refused(() => h.mapFd(new Uint8Array(8), 0, 4096, fd), 'EINVAL', /beyond/);
      refused(() => h.mapFd(view.subarray(1), 0, WASM_PAGE, fd), 'EINVAL', /not on a page/);
      refused(() => h.unmap(view, 4096 + 1, 4096), 'EINVAL', /multiples/);
      refused(() => h.unmap(view, 0, end + WASM_PAGE), 'EINVAL', /beyond/);
      refused(() => h.memfdCreate('x', -1), 'EINVAL', /size must be a whole number/);
      refused(() => h.memfdCreate(42 as unknown as string, 1), 'EINVAL', /name must be a string/);
    });
    assert.ok(Buffer.from(w.mem.buffer).equals(before), 'failed calls changed no byte of the memory');
    assert.equal(w.load8(12345), before[12345]);
  } finally {
    closeSync(roFd);
    closeSync(nullFd);
    rmSync(dir, { recursive: true, force: true });
  }
  const fd = h.memfdCreate('wasmap-test', 0);
  h.closeFd(fd);
  assert.throws(() => h.closeFd(fd), { code: 'EBADF' });
});

// ---- issue #15: guest RAM a peer can shrink, slot lengths of 65536-byte buffers --------------

/** A netmap ring by hand at `ring` in `view`: n slots over buffers of bsize bytes (indices 2..n+1)
 *  placed at ring + bufOfs; head 0, tail n-1 (the user owns n-1 slots). */
function handRing(view: Uint8Array, ring: number, n: number, bsize: number, bufOfs: number): DataView {
  const dv = new DataView(view.buffer, view.byteOffset);
  dv.setBigInt64(ring + 0, BigInt(bufOfs), true); // buf_ofs
  dv.setUint32(ring + 8, n, true); dv.setUint32(ring + 12, bsize, true);
  dv.setUint32(ring + 20, 0, true); dv.setUint32(ring + 24, 0, true); dv.setUint32(ring + 28, n - 1, true);
  for (let i = 0; i < n; i++) { dv.setUint32(ring + 256 + 16 * i, 2 + i, true); dv.setUint16(ring + 256 + 16 * i + 4, 0, true); dv.setUint16(ring + 256 + 16 * i + 6, 0, true); }
  return dv;
}
const slotLen = (dv: DataView, ring: number, i: number) => dv.getUint16(ring + 256 + 16 * i + 4, true);
const slotFlags = (dv: DataView, ring: number, i: number) => dv.getUint16(ring + 256 + 16 * i + 6, true);

/** A connected pair of blocking unix stream sockets [writer, reader]. */
function socketPair(h: NativeHost, dir: string): [number, number] {
  const path = join(dir, `p${Math.random().toString(36).slice(2)}.sock`);
  const l = h.unixListen(path, 1);
  try {
    const w = h.unixConnect(path);
    let r = -1;
    for (let i = 0; i < 100 && r < 0; i++) r = h.unixAccept(l);
    assert.ok(r >= 0, 'accepted');
    return [w, r];
  } finally { h.closeFd(l); }
}

test('#15 fdToRing with 65536-byte buffers: a full slot carries 65535 bytes, never a length of 0 (readv and recvmmsg paths); a frame longer than its slots is dropped and counted, not cut', { skip }, () => {
  const h = requireHost();
  const mem = new WebAssembly.Memory({ initial: 128, maximum: 128, shared: true }); // 8 MiB
  const view = new Uint8Array(mem.buffer);
  const dir = mkdtempSync(join(tmpdir(), 'wasmap-host-'));
  try {
    for (const isSocket of [false, true]) {
      const dv = handRing(view, 0, 8, 65536, 65536);
      const [w, r] = socketPair(h, dir);
      try {
        const data = pattern(65536, isSocket ? 3 : 4);
        h.sendFds(w, data, []);
        const dropped = new Float64Array(1);
        let got = 0;
        // the sockets block and readv does not say MSG_DONTWAIT: ask for exactly what was sent
        for (let k = 0; k < 4 && got < (isSocket ? 2 : 1); k++) got += h.fdToRing(view, 0, r, isSocket, 1, dropped);
        const lens = [0, 1].map((i) => slotLen(dv, 0, i));
        assert.deepEqual(lens, [65535, 1], `${isSocket ? 'recvmmsg' : 'readv'}: slot lengths`);
        if (!isSocket) assert.equal(slotFlags(dv, 0, 0), 0x20, 'readv: the first slot of the frame has MOREFRAG');
        const buf0 = 65536 + 2 * 65536, buf1 = buf0 + 65536;
        assert.ok(Buffer.from(view.subarray(buf0, buf0 + 65535)).equals(data.subarray(0, 65535)), 'bytes of slot 0');
        assert.equal(view[buf1], data[65535], 'the last byte in slot 1');
        assert.equal(dropped[0], 0);
      } finally { h.closeFd(w); h.closeFd(r); }
    }
    // a frame longer than the slots a read may take (64 slots of 64 bytes = 4096 bytes): dropped whole and counted
    const dv = handRing(view, 0, 128, 64, 65536);
    const [w, r] = socketPair(h, dir);
    try {
      h.sendFds(w, pattern(5000, 5), []);
      const dropped = new Float64Array(1);
      assert.equal(h.fdToRing(view, 0, r, false, 1, dropped), 0, 'nothing delivered');
      assert.equal(dropped[0], 1, 'one frame dropped and counted');
      assert.equal(dv.getUint32(20, true), 0, 'head did not move');
      h.sendFds(w, pattern(100, 6), []);
      assert.equal(h.fdToRing(view, 0, r, false, 1, dropped), 1, 'the next frame is taken');
      assert.deepEqual([slotLen(dv, 0, 0), slotLen(dv, 0, 1), slotFlags(dv, 0, 0), slotFlags(dv, 0, 1)], [64, 36, 0x20, 0]);
    } finally { h.closeFd(w); h.closeFd(r); }
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('#15-2 sealFd: a sealable memfd gets F_SEAL_SHRINK (its holder can no longer shrink it), an unsealable one or a file says why, a device or a short file is refused', { skip }, () => {
  const h = requireHost();
  const dir = mkdtempSync(join(tmpdir(), 'wasmap-host-'));
  const sealable = h.memfdCreate('wasmap-test-seal', 3 * WASM_PAGE, 'allow');
  const plain = h.memfdCreate('wasmap-test-plain', 3 * WASM_PAGE);
  const qemu = h.memfdCreate('wasmap-test-qemu', 3 * WASM_PAGE, true);
  writeFileSync(join(dir, 'f'), Buffer.alloc(WASM_PAGE));
  const file = openSync(join(dir, 'f'), 'r+');
  const nul = openSync('/dev/null', 'r+');
  try {
    assert.deepEqual(h.sealFd(sealable, 3 * WASM_PAGE), { sealed: true, why: null, pageSize: h.pageSize() }, 'sealed; a memfd has the system page size');
    assert.throws(() => ftruncateSync(sealable, WASM_PAGE), { code: 'EPERM' }, 'shrinking is refused to everyone now');
    ftruncateSync(sealable, 4 * WASM_PAGE); // growing is not
    assert.deepEqual(h.sealFd(qemu, WASM_PAGE), { sealed: true, why: null, pageSize: h.pageSize() }, 'QEMU\'s sealed memfd: already sealed');
    const p = h.sealFd(plain, 3 * WASM_PAGE);
    assert.equal(p.sealed, false);
    assert.match(p.why!, /MFD_ALLOW_SEALING/);
    const f = h.sealFd(file, WASM_PAGE);
    assert.equal(f.sealed, false);
    assert.ok(f.why);
    assert.throws(() => h.sealFd(file, 2 * WASM_PAGE), { code: 'EINVAL' }, 'shorter than needed');
    assert.throws(() => h.sealFd(nul, 0), { code: 'EINVAL' }, 'not a regular file');
  } finally {
    for (const fd of [sealable, plain, qemu]) h.closeFd(fd);
    closeSync(file); closeSync(nul);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('#15-2 the SIGBUS fence: a truncated file under a fenced span reads zeros (wasm and JS), the fault is counted, unmap removes the fence', { skip }, () => {
  const h = requireHost();
  const w = instantiate(new WebAssembly.Memory({ initial: 16, maximum: 64, shared: true }));
  const view = new Uint8Array(w.mem.buffer);
  const base = h.fenceStats();
  const fd = h.memfdCreate('wasmap-test-fence', 2 * WASM_PAGE);
  try {
    writeSync(fd, pattern(2 * WASM_PAGE, 9), 0, 2 * WASM_PAGE, 0);
    h.mapFd(view, 4 * WASM_PAGE, 2 * WASM_PAGE, fd);
    h.fence(view, 4 * WASM_PAGE, 2 * WASM_PAGE);
    assert.throws(() => h.fence(view, 5 * WASM_PAGE, WASM_PAGE), { code: 'EEXIST' }, 'fences do not overlap');
    assert.equal(h.fenceStats().fences, base.fences + 1);
    assert.equal(w.load8(4 * WASM_PAGE + 5), pattern(16, 9)[5]);
    ftruncateSync(fd, 0);
    assert.equal(w.load8(5 * WASM_PAGE + 7), 0, 'wasm reads zeros where the process would have died');
    assert.equal(view[4 * WASM_PAGE + 1], 0, 'JS too');
    w.store8(4 * WASM_PAGE, 1);
    assert.equal(w.load8(4 * WASM_PAGE), 1, 'and the zero pages are writable');
    assert.equal(h.fenceFaults(view, 4 * WASM_PAGE, 2 * WASM_PAGE), 1, 'one fault: the whole span was mended at once');
    assert.equal(h.fenceStats().faults, base.faults + 1);
    h.unmap(view, 4 * WASM_PAGE, 2 * WASM_PAGE);
    assert.equal(h.fenceStats().fences, base.fences, 'unmap took the fence');
  } finally { h.closeFd(fd); }
});

test('#15-2 the fence chains: a SIGBUS outside every fence still kills the process (SIGBUS), as without the fence', { skip }, () => {
  const addon = findBuildFile('wasmap_host.node');
  assert.ok(addon);
  const js = `
    const h = require(${JSON.stringify(addon)}), fs = require('fs');
    const mem = new WebAssembly.Memory({ initial: 16, maximum: 16, shared: true }), v = new Uint8Array(mem.buffer);
    const a = h.memfdCreate('wasmap-test-a', 65536), b = h.memfdCreate('wasmap-test-b', 65536);
    h.mapFd(v, 65536, 65536, a); h.mapFd(v, 3 * 65536, 65536, b);
    h.fence(v, 65536, 65536);
    fs.ftruncateSync(a, 0); fs.ftruncateSync(b, 0);
    if (v[65536 + 9] !== 0) process.exit(3);
    console.log('fenced ok');
    v[3 * 65536 + 9] = 1; // not fenced: dies here
    process.exit(4);`;
  const r = spawnSync(process.execPath, ['-e', js], { encoding: 'utf8', timeout: 20000 });
  assert.match(r.stdout, /fenced ok/, r.stderr);
  assert.equal(r.signal, 'SIGBUS', `exit ${r.status} signal ${r.signal}: ${r.stderr}`);
});

test('alignGap: the bytes to add to an offset so its absolute address is a multiple of a huge page (hugetlbfs guest RAM is mapped so)', { skip }, () => {
  const h = host!;
  const mem = new WebAssembly.Memory({ initial: 80, maximum: 80, shared: true });
  const u8 = new Uint8Array(mem.buffer);
  const huge = 2 << 20;
  for (const off of [0, 4096, 65536, 3 << 20]) {
    const gap = h.alignGap(u8, off, huge);
    assert.ok(gap >= 0 && gap < huge && gap % 4096 === 0, `gap ${gap} for offset ${off}`);
    assert.equal(h.alignGap(u8, off + gap, huge), 0, 'aligned after the gap');
  }
  assert.equal(h.alignGap(u8, 0, 1), 0);
  assert.throws(() => h.alignGap(u8, 0, 3000), { code: 'EINVAL' }, 'not a power of 2');
  assert.throws(() => h.alignGap(u8, 80 * 65536, 4096), { code: 'EINVAL' }, 'outside the memory');
});
