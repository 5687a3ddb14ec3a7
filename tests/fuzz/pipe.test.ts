// Random sequences of valid and invalid ring updates and syncs on pipes. After every step:
// no trap, every buffer in exactly one place, and what arrives is what was sent, in order.
// WASMAP_FUZZ_OPS (default 100000) and WASMAP_FUZZ_SEED choose the run; `npm run fuzz`
// sets them from --ops/--seed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Datapath } from '../../src/datapath.js';
import { Pipe, PipeEnd } from '../../src/pipe.js';
import { WasmapError } from '../../src/errors.js';

const OPS = Number(process.env.WASMAP_FUZZ_OPS ?? 100000);
const SEED = Number(process.env.WASMAP_FUZZ_SEED ?? 0x5eed1234);

function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return (n: number) => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s % n; };
}

function frame(seq: number, len: number): Uint8Array {
  const f = new Uint8Array(len);
  for (let i = 0; i < len; i++) f[i] = (seq * 7 + i) & 255;
  if (len >= 4) new DataView(f.buffer).setUint32(0, seq, true);
  return f;
}

interface Flow { tx: PipeEnd; rx: PipeEnd; next: number; expect: number; received: number; lostAllowed: boolean }

test(`pipe fuzz: ${OPS} random operations (seed ${SEED.toString(16)})`, () => {
  const r = rng(SEED);
  const dp = new Datapath();
  const stats = { ops: 0, syncs: 0, invalid: 0, rejected: 0, frames: 0, resets: 0, pipes: 0 };
  while (stats.ops < OPS) {
    const slots = [8, 16, 64, 128][r(4)], bufSize = [64, 256, 2048][r(3)];
    const pipe = new Pipe(dp, { slots, bufSize });
    stats.pipes++;
    const flows: Flow[] = [
      { tx: pipe.master, rx: pipe.slave, next: 0, expect: 0, received: 0, lostAllowed: false },
      { tx: pipe.slave, rx: pipe.master, next: 0, expect: 0, received: 0, lostAllowed: false },
    ];
    const codeOf = (f: () => unknown): string | null => { try { f(); return null; } catch (e) { if (e instanceof WasmapError) return e.code; throw e; } };
    const reset = (kring: number) => { dp.fn.kring_reset(kring); stats.resets++; };
    const end = Math.min(OPS, stats.ops + 2000 + r(20000));
    for (; stats.ops < end; stats.ops++) {
      const fl = flows[r(2)];
      const op = r(100);
      const tx = fl.tx.tx, rx = fl.rx.rx;
      if (op < 30) { // write frames (some multi-slot) and advance head
        const frames: Uint8Array[] = [];
        const k = r(Math.min(6, slots));
        for (let i = 0; i < k; i++) frames.push(frame(fl.next + i, 4 + r(Math.min(bufSize * 3, 1500))));
        fl.next += tx.send(frames);
      } else if (op < 55) { // txsync
        const before = tx.packets;
        fl.tx.txsync();
        assert.ok(tx.packets >= before);
        assert.equal(tx.tail, tx.hwtail);
        stats.syncs++;
      } else if (op < 80) { // rxsync, read some, rxsync
        fl.rx.rxsync();
        const got = rx.recv(r(8));
        for (const f of got) {
          const seq = new DataView(f.buffer, f.byteOffset).getUint32(0, true);
          if (fl.lostAllowed) assert.ok(seq >= fl.expect, `seq ${seq} went backwards (expected ≥ ${fl.expect})`);
          else assert.equal(seq, fl.expect, 'frames arrive in order with none lost');
          assert.deepEqual(f, frame(seq, f.length), `frame ${seq} arrived intact`);
          fl.expect = seq + 1; fl.received++; stats.frames++;
        }
        fl.rx.rxsync();
        stats.syncs++;
      } else { // an invalid update: the sync must refuse it, touch nothing, and the ring stays broken until reset
        stats.invalid++;
        const kind = r(6);
        const n = slots;
        let ring = tx, sync = () => fl.tx.txsync(), want = '';
        const oldHead = tx.head, oldCur = tx.cur;
        if (kind === 0) { // head past tail
          tx.head = (tx.tail + 1 + r(Math.max(1, n - 1 - tx.space))) % n;
          if (((tx.head - tx.hwcur + n) % n) <= ((tx.hwtail - tx.hwcur + n) % n)) { tx.head = oldHead; tx.cur = oldCur; continue; }
          want = 'E_HEAD';
        } else if (kind === 1) { // cur past tail
          tx.cur = (tx.tail + 1) % n;
          if (((tx.cur - tx.head + n) % n) <= ((tx.tail - tx.head + n) % n)) { tx.cur = oldCur; continue; }
          want = 'E_CUR';
        } else if (kind === 2 || kind === 3) { // a bad slot: reserved / out-of-range buffer, or len > buffer
          if (tx.space === 0) continue;
          const h = tx.head;
          tx.send([frame(fl.next, 8)]);
          if (kind === 2) tx.setBufIdx(h, [0, 1, pipe.region.nbufs, 0xffffffff][r(4)]);
          else tx.setLen(h, bufSize + 1 + r(100));
          want = kind === 2 ? 'E_BUF_IDX' : 'E_BUF_LEN';
        } else if (kind === 4) { // a MOREFRAG chain longer than 64 slots (needs a 128-slot ring)
          if (n < 128 || tx.space < 70) continue;
          let h = tx.head;
          for (let i = 0; i < 66; i++) { tx.setLen(h, 1); tx.setFlags(h, dp.abi.NS_MOREFRAG); h = tx.next(h); }
          tx.head = h; tx.cur = h;
          want = 'E_FRAGS';
        } else { // rx head past tail
          fl.rx.rxsync();
          if (rx.space === n - 1) continue;
          ring = rx; sync = () => fl.rx.rxsync();
          rx.head = (rx.tail + 1) % n;
          if (rx.head === rx.hwcur) { rx.head = rx.hwcur; rx.cur = rx.hwcur; continue; }
          want = 'E_HEAD';
        }
        const snap = dp.u8.slice(pipe.region.base, pipe.region.base + pipe.region.span);
        assert.equal(codeOf(sync), want, `invalid update kind ${kind} answered with ${want}`);
        assert.deepEqual(dp.u8.subarray(pipe.region.base, pipe.region.base + pipe.region.span), snap, 'a refused sync touches nothing');
        assert.ok(ring.broken);
        assert.equal(codeOf(sync), 'E_BROKEN', 'broken until reset');
        stats.rejected++;
        reset(ring.kring);
        assert.ok(!ring.broken);
        if (ring === tx) fl.lostAllowed = true; // frames written but not yet moved are discarded by the reset
        if (ring === tx) fl.next = Math.max(fl.next, fl.expect) + 1000;
      }
      const problems = pipe.region.audit();
      assert.deepEqual(problems, [], 'every buffer in exactly one slot or on the free stack');
    }
    // drain both flows: with no reset, every frame written arrives
    for (const fl of flows) {
      for (let i = 0; i < 4 * slots; i++) { fl.tx.txsync(); for (const f of fl.rx.recv()) { const seq = new DataView(f.buffer, f.byteOffset).getUint32(0, true); assert.ok(seq >= fl.expect); fl.expect = seq + 1; fl.received++; } }
      if (!fl.lostAllowed) assert.equal(fl.received, fl.next, 'without resets, received = sent after draining');
    }
    assert.deepEqual(pipe.region.audit(), []);
    pipe.close();
  }
  console.log(`# fuzz: ${JSON.stringify(stats)}`);
  assert.ok(stats.rejected > 0 && stats.frames > 0);
});
