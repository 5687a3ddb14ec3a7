// A hostile (or broken) kernel side of an AF_PACKET port's rx path, as tpk_pull sees it: ring
// frames with random status words (USER, USER|COPY, LOSING and other bits, or not yet ours),
// random tp_len / tp_snaplen / tp_mac, random headers (valid GSO, junk flags), and a socket
// queue whose copies (the copy path of small ring frames) come in random numbers (fewer than
// asked, none) with random lengths: right, cut (longer than a buffer), mismatched, 0 (refused by
// the kernel), past 4 GiB. Ports with header 0, 10 and 12; port rings nearly full at times.
// Checked every call: canary spans around the ring, the copy area, the scratch, the state and
// the port's region are never touched; every ring frame handed back is either taken or counted
// (taken + counted = handed back); nothing is asked of the host beyond the copy area's buffers;
// the port's ring stays sound (region audit); an honest frame (whole in its ring frame, or
// whose copy matches) arrives byte for byte, in order. WASMAP_FUZZ_SCALE / WASMAP_FUZZ_SEED.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Datapath } from '../../src/datapath.js';
import { Region } from '../../src/port.js';

const SCALE = Math.max(0.01, Number(process.env.WASMAP_FUZZ_SCALE ?? 1));
const SEED = process.env.WASMAP_FUZZ_SEED !== undefined ? Number(process.env.WASMAP_FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const ROUNDS = Math.round(600 * SCALE);
const CANARY = 0x3c, GUARD = 4096;
const FS = 2048, NF = 16, CB = 69632, K = 8, MAC = 76;

function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s; };
  return { n: (k: number) => next() % k, p: (x: number) => next() / 2 ** 32 < x };
}

test(`tpk_pull against a hostile ring and socket queue (seed ${SEED}, ${ROUNDS} rounds per case)`, { timeout: 300000 }, () => {
  const r = rng(SEED);
  for (const hdr of [0, 10, 12]) for (const hostile of [true, false]) {
    const dp = new Datapath();
    const guards: number[] = [];
    const guard = () => { const g = dp.alloc(GUARD, 64); dp.u8.fill(CANARY, g, g + GUARD); guards.push(g); };
    const guarded = (bytes: number, align = 64): number => { guard(); const at = dp.alloc(bytes, align); guard(); return at; };
    const ring = guarded(FS * NF, 4096), st = guarded(dp.abi.TPK_SIZE), cb = guarded(dp.fn.tpk_copy_bytes(CB, K));
    const scratch = hdr ? 0 : guarded(dp.fn.tpk_scratch_size(CB));
    guard();
    const reg = new Region(dp, { slots: 128, bufSize: 2048 });
    guard();
    dp.fn.tpk_copy_setup(st, cb, CB, K);
    const tx = reg.ring('tx');
    const queue: { data: Uint8Array; len: number }[] = []; // the socket's queue: what recv returns
    const expect: Uint8Array[] = []; // honest run: every frame, as the port must get it, in order
    let next = 0; // the next ring frame the "kernel" fills
    const taken = () => Number(dp.u64(st + 8)), refused = () => Number(dp.u64(st + 16));
    const ours = () => { let c = 0; for (let i = 0; i < NF; i++) if (dp.u32(ring + i * FS) !== 0) c++; return c; };
    for (let round = 0; round < ROUNDS; round++) {
      // the kernel fills some free ring frames
      for (let f = r.n(NF); f > 0; f--) {
        const at = ring + next * FS;
        if (dp.u32(at) !== 0) break; // ours still
        const honest = !hostile || r.p(0.5), big = r.p(0.4);
        const len = big ? 2000 + r.n(r.p(0.2) ? 64000 : 9000) : 14 + r.n(1800);
        const frame = new Uint8Array(len), seed = r.n(256);
        for (let i = 0; i < len; i++) frame[i] = (i * 131 + seed + (i >> 8)) & 255;
        const vh = new Uint8Array(10);
        if (hostile && r.p(0.3)) for (let i = 0; i < 10; i++) vh[i] = r.n(256);
        const fits = MAC + len <= FS, snap = fits ? len : FS - MAC;
        const mac = honest || r.p(0.5) ? MAC : r.n(70000);
        dp.setU32(at + 4, honest || r.p(0.5) ? len : r.n(2 ** 32)); dp.setU32(at + 8, honest || r.p(0.5) ? snap : r.n(2 ** 32)); dp.setU16(at + 12, mac & 0xffff);
        dp.u8.set(vh, at + MAC - 10); dp.u8.set(frame.subarray(0, snap), at + MAC);
        let status = 1;
        if (!fits && (honest || r.p(0.7))) { // the copy path: queued whole (a hostile queue lies at times)
          status |= 2;
          const q = new Uint8Array(10 + len); q.set(vh); q.set(frame, 10);
          queue.push({ data: q, len: honest ? q.length : [q.length, 0, CB + 1 + r.n(1000), r.n(2 ** 32), q.length - 1][r.n(5)] });
          if (!honest && r.p(0.2)) queue.pop(); // nothing queued for it
        } // else cut with no copy: it must be refused
        if (!honest && r.p(0.3)) status |= r.n(256) & ~2; // other bits (LOSING, CSUMNOTREADY...)
        if (!hostile) { const e = new Uint8Array(hdr + len); if (hdr) e.set(vh); e.set(frame, hdr); expect.push(e); }
        dp.setU32(at, status);
        next = (next + 1) % NF;
      }
      // the switch takes some or all of the frames out of the port's tx ring (the rest wait: a ring
      // nearly full, frames waiting for room)
      { const n = tx.numSlots, most = (tx.head - 1 - tx.tail + 2 * n) % n; tx.tail = (tx.tail + (r.p(0.5) ? most : r.n(most + 1))) % n; }
      const t0 = taken(), c0 = refused(), o0 = ours(), h0 = tx.head;
      let moved = 0;
      for (let call = 0; call < 64; call++) {
        moved += dp.fn.tpk_pull(st, ring, NF, FS, reg.kring('tx'), 1 + r.n(64), hdr, scratch);
        const want = dp.fn.tpk_want(st);
        assert.ok(want <= K, `asked for ${want} copies, the area has ${K}`);
        if (!want) break;
        const n = Math.min(want, hostile && r.p(0.1) ? r.n(want + 1) : want, queue.length);
        for (let i = 0; i < n; i++) {
          const q = queue.shift()!;
          dp.setU32(cb + 4 * i, q.len >>> 0);
          dp.u8.set(q.data.subarray(0, Math.min(CB, q.data.length)), cb + 64 + i * CB);
        }
        dp.fn.tpk_copies(st, n);
      }
      assert.equal(taken() - t0, moved, 'the state counts what tpk_pull returned');
      assert.equal(o0 - ours(), moved + refused() - c0, `round ${round}: every ring frame handed back was taken or counted`);
      if (!hostile) {
        assert.equal(refused(), 0, `round ${round}: an honest kernel's frames are all taken`);
        let e = expect.shift(), at = 0;
        for (let i = h0; i !== tx.head; i = tx.next(i)) {
          const b = tx.buf(i).subarray(0, tx.len(i));
          assert.ok(e && at + b.length <= e.length && b.every((x, j) => x === e![at + j]), `round ${round}, header ${hdr}: a frame arrived whole, in order`);
          at += b.length;
          if (!(tx.flags(i) & 0x20)) { assert.equal(at, e!.length, 'whole'); e = expect.shift(); at = 0; }
        }
        if (e) expect.unshift(e);
      }
      for (const g of guards) for (let i = g; i < g + GUARD; i++) if (dp.u8[i] !== CANARY) assert.fail(`round ${round}, header ${hdr}: byte ${i - g} of a guard span written`);
      if (round % 16 === 0) assert.deepEqual(reg.audit(), [], 'the port region stays sound');
    }
  }
});
