// The TPACKET copy path (AF_PACKET ports with small ring frames): a frame larger than a ring
// frame is truncated in the ring with TP_STATUS_COPY and queued whole on the socket
// (PACKET_COPY_THRESH); tpk_pull stops there, says how many to receive (tpk_want), and after the
// host received them into the copy area (tpk_copies) takes them in ring order. Here the ring
// and the socket's queue are played by the test: what the kernel writes is what tpacket_rcv
// and packet_recvmsg write (net/packet/af_packet.c). Before the copy path such frames were
// refused (counted) and never delivered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Datapath } from '../../src/datapath.js';
import { Region } from '../../src/port.js';
import { ipFrame, TCP } from '../frames.js';

const MAC = 76; // tp_mac with the 10-byte header (TPACKET_V2, an Ethernet device)
const FS = 2048, NF = 8, CB = 69632, K = 4;
const USER = 1, COPY = 2;
const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 255);

interface Rig { dp: Datapath; reg: Region; ring: number; st: number; cb: number; scratch: number; queue: Uint8Array[] }
function rig(slots = 64, hdr0 = false): Rig {
  const dp = new Datapath();
  const reg = new Region(dp, { slots, bufSize: 2048 });
  const ring = dp.alloc(FS * NF, 4096), st = dp.alloc(dp.abi.TPK_SIZE);
  const cb = dp.alloc(dp.fn.tpk_copy_bytes(CB, K), 64);
  dp.fn.tpk_copy_setup(st, cb, CB, K);
  const scratch = hdr0 ? dp.alloc(dp.fn.tpk_scratch_size(CB), 64) : 0;
  return { dp, reg, ring, st, cb, scratch, queue: [] };
}
/** The kernel receives `frame` (with header vh) into ring frame i: whole when it fits, else cut with COPY and queued. */
function kernelRx(x: Rig, i: number, frame: Uint8Array, vh: number[] = new Array(10).fill(0)): void {
  const f = x.ring + i * FS, fits = MAC + frame.length <= FS, snap = fits ? frame.length : FS - MAC;
  x.dp.setU32(f + 4, frame.length); x.dp.setU32(f + 8, snap); x.dp.setU16(f + 12, MAC);
  x.dp.u8.set(vh, f + MAC - 10); x.dp.u8.set(frame.subarray(0, snap), f + MAC);
  if (!fits) x.queue.push(Uint8Array.from([...vh, ...frame]));
  x.dp.setU32(f, fits ? USER : USER | COPY);
}
/** The host's packetRecv: up to n frames from the queue into the copy area (MSG_TRUNC lengths). */
function hostRecv(x: Rig, n: number, cut?: number): number {
  let got = 0;
  for (; got < n && x.queue.length; got++) {
    const q = x.queue.shift()!, room = cut ?? CB;
    x.dp.setU32(x.cb + 4 * got, q.length);
    x.dp.u8.set(q.subarray(0, Math.min(room, q.length)), x.cb + 64 + got * CB);
  }
  x.dp.fn.tpk_copies(x.st, got);
  return got;
}
/** tpk_pull as the backend calls it: pull, receive what it wants, pull again. */
function pull(x: Rig, hdr: number, max = 256): number {
  let moved = 0;
  for (let round = 0; round < 64 && moved < max; round++) {
    moved += x.dp.fn.tpk_pull(x.st, x.ring, NF, FS, x.reg.kring('tx'), max - moved, hdr, x.scratch);
    const want = x.dp.fn.tpk_want(x.st);
    if (!want) break;
    hostRecv(x, want);
  }
  return moved;
}
function chains(x: Rig): Uint8Array[] {
  const r = x.reg.ring('tx'), out: Uint8Array[] = []; let cur: number[] = [];
  for (let i = 0; i !== r.head; i = r.next(i)) {
    cur.push(...r.buf(i).subarray(0, r.len(i)));
    if (!(r.flags(i) & 0x20)) { out.push(Uint8Array.from(cur)); cur = []; }
  }
  return out;
}
const refused = (x: Rig) => Number(x.dp.u64(x.st + 16));
const copied = (x: Rig) => Number(x.dp.u64(x.st + 64));

test('tpacket copy path: frames larger than a ring frame come whole from the socket, in ring order, between ring frames', () => {
  const x = rig();
  const a = pattern(100, 1), big1 = pattern(9000, 2), b = pattern(1500, 3), big2 = pattern(3000, 4), c = pattern(60, 5);
  [a, big1, b, big2, c].forEach((f, i) => kernelRx(x, i, f));
  // the first call stops at the first COPY frame and asks for both (they are in the ring)
  assert.equal(x.dp.fn.tpk_pull(x.st, x.ring, NF, FS, x.reg.kring('tx'), 256, 12, 0), 1);
  assert.equal(x.dp.fn.tpk_want(x.st), 2);
  assert.equal(x.dp.u32(x.ring + FS), USER | COPY, 'the COPY frame is kept until its data is there');
  hostRecv(x, 2);
  assert.equal(x.dp.fn.tpk_pull(x.st, x.ring, NF, FS, x.reg.kring('tx'), 256, 12, 0), 4);
  assert.equal(x.dp.fn.tpk_want(x.st), 0);
  const hdr = new Uint8Array(12);
  assert.deepEqual(chains(x), [a, big1, b, big2, c].map((f) => Uint8Array.from([...hdr, ...f])), 'every frame whole, in order, behind its header');
  assert.equal(copied(x), 2);
  assert.equal(refused(x), 0);
  for (let i = 0; i < 5; i++) assert.equal(x.dp.u32(x.ring + i * FS), 0, `ring frame ${i} handed back`);
});

test('tpacket copy path, port without a header: a 64 KiB GSO frame from the socket is segmented; a jumbo frame passes plain', () => {
  const x = rig(128, true);
  const tcpLen = 14 + 20 + 20 + 64000;
  const tso = ipFrame({ proto: TCP, len: tcpLen });
  kernelRx(x, 0, tso, [1, 1, 54, 0, 1448 & 255, 1448 >> 8, 34, 0, 16, 0]); // NEEDS_CSUM, TCPV4, gso_size 1448
  const jumbo = pattern(8000, 7);
  kernelRx(x, 1, jumbo);
  assert.equal(pull(x, 0), 2);
  const got = chains(x);
  const segs = Math.ceil(64000 / 1448);
  assert.equal(got.length, segs + 1);
  assert.deepEqual(got.slice(0, segs).map((f) => f.length), [...new Array(segs - 1).fill(54 + 1448), 54 + 64000 - 1448 * (segs - 1)]);
  assert.deepEqual(got[segs], jumbo);
  assert.equal(copied(x), 2);
  assert.equal(refused(x), 0);
});

test('tpacket copy path: every frame that cannot be delivered whole is counted, none is shortened, the pairing holds', () => {
  const x = rig();
  const ok = pattern(5000, 1), cut = pattern(7000, 2), after = pattern(4000, 3);
  kernelRx(x, 0, ok); kernelRx(x, 1, cut); kernelRx(x, 2, after);
  // recv cut the second one (its whole length, as MSG_TRUNC reports it, is more than a buffer)
  assert.equal(x.dp.fn.tpk_pull(x.st, x.ring, NF, FS, x.reg.kring('tx'), 256, 10, 0), 0);
  assert.equal(x.dp.fn.tpk_want(x.st), 3);
  x.dp.setU32(x.cb + 4 * 1, 0); // placeholder, overwritten below
  let got = 0;
  for (const q of x.queue.splice(0)) { x.dp.setU32(x.cb + 4 * got, got === 1 ? CB + 1 : q.length); x.dp.u8.set(q.subarray(0, CB), x.cb + 64 + got * CB); got++; }
  x.dp.fn.tpk_copies(x.st, got);
  assert.equal(x.dp.fn.tpk_pull(x.st, x.ring, NF, FS, x.reg.kring('tx'), 256, 10, 0), 2);
  assert.equal(refused(x), 1, 'the cut one is counted');
  assert.deepEqual(chains(x).map((f) => f.subarray(10)), [ok, after]);
  // a copy whose length does not match its ring frame's tp_len (never delivered as that frame)
  const y = rig();
  kernelRx(y, 0, pattern(3000, 4));
  assert.equal(y.dp.fn.tpk_pull(y.st, y.ring, NF, FS, y.reg.kring('tx'), 256, 10, 0), 0);
  y.queue[0] = y.queue[0].subarray(0, 2500);
  hostRecv(y, 1);
  assert.equal(y.dp.fn.tpk_pull(y.st, y.ring, NF, FS, y.reg.kring('tx'), 256, 10, 0), 0);
  assert.equal(refused(y), 1);
  assert.equal(y.dp.u32(y.ring), 0, 'handed back');
  // the socket had nothing for the first COPY frame (the kernel consumed it, refused it): the
  // second's copy is tried on the first (lengths differ: counted), the second finds the socket
  // empty (counted). Two frames, two counts, nothing delivered cut or as another frame
  const z = rig();
  kernelRx(z, 0, pattern(3000, 5)); z.queue.length = 0;
  kernelRx(z, 1, pattern(2500, 6));
  assert.equal(pull(z, 10), 0);
  assert.equal(refused(z), 2);
  assert.equal(z.dp.u32(z.ring) + z.dp.u32(z.ring + FS), 0, 'both handed back');
  // no room in the port's ring: the received frame is kept for the next call
  const w = rig(4); // 3 usable slots
  kernelRx(w, 0, pattern(3000, 7)); kernelRx(w, 1, pattern(3000, 8)); // 2 slots each with the header
  assert.equal(pull(w, 10), 1, 'the second waits for room');
  assert.equal(w.dp.u32(w.ring + FS), USER | COPY);
  w.reg.ring('tx').tail = 1; // the switch took the first frame's two slots
  assert.equal(pull(w, 10), 1);
  assert.equal(w.dp.fn.tpk_want(w.st), 0, 'nothing more received for it');
  const r = w.reg.ring('tx');
  assert.equal(r.head, 0, 'four slots used, wrapped');
  const frame = (from: number) => Uint8Array.from([...r.buf(from).subarray(0, r.len(from)), ...r.buf(from + 1).subarray(0, r.len(from + 1))]).subarray(10);
  assert.deepEqual([frame(0), frame(2)], [pattern(3000, 7), pattern(3000, 8)]);
  assert.equal(copied(w), 2);
  assert.equal(refused(w), 0);
});

test('tpacket: without a copy area a COPY frame is refused (counted), as a truncated one', () => {
  const dp = new Datapath();
  const reg = new Region(dp, { slots: 16, bufSize: 2048 });
  const ring = dp.alloc(FS * NF, 4096), st = dp.alloc(dp.abi.TPK_SIZE);
  const f = pattern(3000, 9);
  dp.setU32(ring + 4, f.length); dp.setU32(ring + 8, FS - MAC); dp.setU16(ring + 12, MAC); dp.setU32(ring, USER | COPY);
  assert.equal(dp.fn.tpk_pull(st, ring, NF, FS, reg.kring('tx'), 256, 10, 0), 0);
  assert.equal(dp.fn.tpk_want(st), 0);
  assert.equal(Number(dp.u64(st + 16)), 1);
  assert.equal(dp.u32(ring), 0);
});
