// assembly/xsk.ts against a kernel played by this test: the XSK rings and the UMEM are plain
// spans of the memory here, written the way the kernel writes them — and the way a broken or
// hostile one could (descriptors outside the UMEM or across a frame's end, too long, indices claiming more than the
// ring holds, completions of frames that are not ours or come twice). Every such descriptor
// is refused and counted by its reason; nothing outside the UMEM is read or written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Datapath } from '../../src/datapath.js';
import { Region } from '../../src/port.js';

const N = 64, FS = 2048, RXF = N / 2, TXF = N / 2;
const PROD = 0, CONS = 64, FLAGS = 128, DESC = 192; // the kernel's layout (XDP_MMAP_OFFSETS on x86-64)

function setup() {
  const dp = new Datapath();
  const a = dp.abi;
  const ring = (dsize: number) => dp.alloc(DESC + N * dsize, 4096);
  const r = { fill: ring(8), comp: ring(8), rx: ring(16), tx: ring(16) };
  const umem = dp.alloc((RXF + TXF) * FS, 4096), st = dp.alloc(a.XSK_SIZE), free = dp.alloc(TXF * 4);
  const put = (at: number, base: number) => { dp.setU32(st + at, base + PROD); dp.setU32(st + at + 4, base + CONS); dp.setU32(st + at + 8, base + FLAGS); dp.setU32(st + at + 12, base + DESC); };
  put(a.XSK_FILL, r.fill); put(a.XSK_COMP, r.comp); put(a.XSK_RX, r.rx); put(a.XSK_TX, r.tx);
  dp.setU32(st + a.XSK_NDESC, N); dp.setU32(st + a.XSK_UMEM, umem);
  dp.setU32(st + a.XSK_FSIZE, FS); dp.setU32(st + a.XSK_RX_FRAMES, RXF); dp.setU32(st + a.XSK_TX_FRAMES, TXF); dp.setU32(st + a.XSK_FREE, free);
  dp.fn.xsk_init(st);
  const reg = new Region(dp, { slots: 16, bufSize: 1536 }); // smaller than a UMEM frame: too-long rx frames can happen
  const ctr = (name: string) => Number(dp.u64(st + a[name]));
  return { dp, a, r, umem, st, reg, ctr };
}

test('xsk_init gives every rx frame to the fill ring', () => {
  const { dp, r } = setup();
  assert.equal(dp.u32(r.fill + PROD), RXF);
  for (let i = 0; i < RXF; i++) assert.equal(Number(dp.u64(r.fill + DESC + 8 * i)), i * FS);
});

test('xsk_pull: good frames copied whole, bad descriptors refused and counted, frames back to the fill ring', () => {
  const { dp, r, umem, st, reg, ctr } = setup();
  const UM = (RXF + TXF) * FS;
  const descs: [bigint, number][] = [
    [256n, 60],                        // fine
    [BigInt(UM), 60],                  // starts past the UMEM
    [BigInt(UM - 10), 60],             // runs past its end
    [0xffff_ffff_ffff_ff00n, 0x200],   // wraps around 2^64
    [BigInt(FS - 10), 60],             // inside the UMEM, but runs from rx frame 0 into frame 1
    [BigInt(RXF * FS + 256), 60],      // a tx frame: never the kernel's to fill
    [BigInt(FS), 2048],                // a whole frame, longer than a netmap buffer (1536 here)
    [BigInt(2 * FS + 256), 1514],      // fine
  ];
  descs.forEach(([addr, len], i) => { dp.dv.setBigUint64(r.rx + DESC + 16 * i, addr, true); dp.setU32(r.rx + DESC + 16 * i + 8, len); });
  dp.u8.fill(0x11, umem + 256, umem + 256 + 60);
  dp.u8.fill(0x22, umem + 2 * FS + 256, umem + 2 * FS + 256 + 1514);
  dp.setU32(r.fill + CONS, RXF); // the kernel took every fill entry
  dp.setU32(r.rx + PROD, descs.length);
  const k = reg.kring('tx');
  const moved = dp.fn.xsk_pull(st, k, 100) & 0x7fffffff;
  assert.equal(moved, 2);
  assert.equal(ctr('XSK_RX_BAD_DESC'), 5, 'three outside the UMEM, one across a frame\'s end, one in a tx frame');
  assert.equal(ctr('XSK_RX_TOO_BIG'), 1, 'one too long for a buffer (dropped whole, never cut)');
  assert.equal(dp.u32(r.rx + CONS), descs.length, 'all consumed');
  const tx = reg.ring('tx');
  assert.equal(tx.head, 2);
  assert.equal(tx.len(0), 60); assert.ok(tx.buf(0).subarray(0, 60).every((b) => b === 0x11));
  assert.equal(tx.len(1), 1514); assert.ok(tx.buf(1).subarray(0, 1514).every((b) => b === 0x22));
  // the three frames whose descriptor lay inside one rx frame went back (as chunk addresses)
  assert.equal(dp.u32(r.fill + PROD), RXF + 3);
  assert.deepEqual([0, 1, 2].map((i) => Number(dp.u64(r.fill + DESC + 8 * ((RXF + i) % N)))), [0, FS, 2 * FS]);
});

test('xsk_pull and xsk_push: a producer claiming more than the ring holds is refused whole', () => {
  const { dp, r, st, reg, ctr } = setup();
  dp.setU32(r.rx + PROD, N + 5);
  assert.equal(dp.fn.xsk_pull(st, reg.kring('tx'), 100) & 0x7fffffff, 0);
  assert.equal(ctr('XSK_RING_BAD'), 1);
  assert.equal(dp.u32(r.rx + CONS), 0, 'nothing consumed');
  dp.setU32(r.tx + CONS, 0xffff_0000); // a tx consumer ahead of what we produced
  const rx = reg.ring('rx');
  rx.tail = 1; rx.setLen(0, 60); rx.setFlags(0, 0);
  assert.equal(dp.fn.xsk_push(st, reg.kring('rx')) & 0x7fffffff, 0);
  assert.equal(ctr('XSK_RING_BAD'), 2);
});

test('xsk_push: frames into free tx frames, oversize chains and bad slots dropped whole; completions checked', () => {
  const { dp, a, r, umem, st, reg, ctr } = setup();
  const rx = reg.ring('rx'), MORE = a.NS_MOREFRAG;
  // slots: [0] 100-byte frame; [1,2] a 2 × 1500-byte chain (3000 > a UMEM frame); [3] a slot
  // naming buffer 0 (reserved); [4] 60-byte frame; [5] first half of an unfinished chain
  const frame = (i: number, len: number, flags: number, fill: number) => { rx.setLen(i, len); rx.setFlags(i, flags); rx.buf(i).fill(fill, 0, Math.min(len, 2048)); };
  frame(0, 100, 0, 0xa1); frame(1, 1500, MORE, 0xb1); frame(2, 1500, 0, 0xb2); frame(4, 60, 0, 0xc1); frame(5, 500, MORE, 0xd1);
  rx.setLen(3, 60); rx.setFlags(3, 0); const keep = rx.bufIdx(3); rx.setBufIdx(3, 0);
  rx.tail = 6;
  const r0 = dp.fn.xsk_push(st, reg.kring('rx'));
  rx.setBufIdx(3, keep);
  assert.equal(r0 & 0x7fffffff, 2, 'two frames posted');
  assert.equal(ctr('XSK_TX_TOO_BIG'), 2, 'the oversize chain and the bad slot');
  assert.equal(rx.head, 5, 'the unfinished chain waits');
  assert.equal(dp.u32(r.tx + PROD), 2);
  const posted: number[] = [];
  for (let i = 0; i < 2; i++) {
    const addr = Number(dp.u64(r.tx + DESC + 16 * i)), len = dp.u32(r.tx + DESC + 16 * i + 8);
    assert.ok(addr >= RXF * FS && addr < (RXF + TXF) * FS && addr % FS === 0, `tx frame ${addr} is one of ours`);
    const want = i === 0 ? [100, 0xa1] : [60, 0xc1];
    assert.equal(len, want[0]);
    assert.ok(dp.u8.subarray(umem + addr, umem + addr + len).every((b) => b === want[1]), 'copied byte for byte');
    posted.push(addr);
  }
  // need_wakeup set by the kernel: bit 31 asks the host to kick
  dp.setU32(r.tx + FLAGS, 1);
  rx.head = 5; rx.tail = 5;
  assert.ok(dp.fn.xsk_push(st, reg.kring('rx')) < 0, 'the kick is asked for');
  // completions: both frames, one of them twice, and an rx frame that was never sent
  dp.setU32(r.tx + CONS, 2);
  [posted[0], posted[1], posted[1], 0].forEach((v, i) => dp.dv.setBigUint64(r.comp + DESC + 8 * i, BigInt(v), true));
  dp.setU32(r.comp + PROD, 4);
  dp.fn.xsk_push(st, reg.kring('rx'));
  assert.equal(dp.u32(r.comp + CONS), 4);
  assert.equal(ctr('XSK_COMP_BAD'), 2, 'the second return and the foreign address are ignored');
  // the free stack holds every tx frame again, each once: TXF frames can be posted, no more
  rx.head = 0; rx.tail = 0;
  for (let i = 0; i < 15; i++) { rx.setLen(i, 60); rx.setFlags(i, 0); }
  let total = 0;
  for (let round = 0; round < 4; round++) {
    const h = rx.head; rx.tail = (h + 15) % 16;
    total += dp.fn.xsk_push(st, reg.kring('rx')) & 0x7fffffff;
    dp.setU32(r.tx + CONS, dp.u32(r.tx + PROD)); // the kernel takes them but completes none
  }
  assert.equal(total, TXF, `no more frames posted than the ${TXF} tx frames`);
  assert.ok(ctr('XSK_TX_FULL') > 0, 'the rest waits (back-pressure, not drops)');
});
