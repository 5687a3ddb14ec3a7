// netmap pipes through the control plane (src/pipe.ts): frames, wrap-around, flow control,
// multi-slot frames, zero copy, and what a user who writes nonsense into a ring gets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Datapath } from '../../src/datapath.js';
import { Pipe } from '../../src/pipe.js';
import { WasmapError } from '../../src/errors.js';
import { assertAudit, assertWasmapError, frame, seqOf, sendFrags, split, station, NS_BUF_CHANGED, NS_MOREFRAG } from './helpers.js';

const A = station(1), B = station(2);

test('frames sent on one end arrive on the other, byte for byte, both directions', () => {
  const dp = new Datapath();
  const start = dp.allocated;
  const p = new Pipe(dp, { slots: 64 });
  const out = [frame(B, A, 60, 1), frame(B, A, 1514, 2), frame(B, A, 61, 3), frame(B, A, 2048, 4)];
  assert.equal(p.master.send(out), 4);
  const got = p.slave.recv();
  assert.deepEqual(got, out);
  assert.deepEqual(p.master.recv(), [], 'nothing comes back to the sender');
  const back = [frame(A, B, 100, 9)];
  assert.equal(p.slave.send(back), 1);
  assert.deepEqual(p.master.recv(), back);
  assert.equal(p.master.tx.packets, 4n);
  assert.equal(p.master.tx.bytes, BigInt(60 + 1514 + 61 + 2048));
  assert.equal(p.slave.rx.packets, 4n);
  assert.equal(p.slave.tx.packets, 1n);
  assertAudit(p.region);
  p.close();
  assert.equal(dp.allocated, start, 'close frees the region');
});

test('100 rounds of wrap-around on an 8-slot pipe keep order and content', () => {
  const dp = new Datapath();
  const p = new Pipe(dp, { slots: 8 });
  let seq = 0, total = 0;
  for (let r = 0; r < 100; r++) {
    const k = 1 + (r % 7); // 1..7: an 8-slot ring holds 7
    const out = Array.from({ length: k }, () => frame(B, A, 60 + (seq % 50), seq++));
    assert.equal(p.master.tx.send(out), k, `round ${r}: ${k} frames fit`);
    assert.equal(p.master.txsync(), k, `round ${r}: txsync moves all ${k}`);
    const got = p.slave.recv();
    assert.deepEqual(got, out, `round ${r}`);
    total += k;
    assert.equal(p.master.tx.space, 7, 'all tx slots are free again');
  }
  assert.equal(total, 395);
  assert.equal(p.master.tx.packets, 395n);
  assert.equal(p.slave.rx.packets, 395n);
  assert.equal(p.master.tx.head, 395 % 8, 'the head went round the ring 49 times');
  assert.equal(p.slave.rx.head, 395 % 8);
  assertAudit(p.region);
  p.close();
});

test('flow control: a full reader stops the writer, and k frames read let exactly k through', () => {
  const dp = new Datapath();
  const p = new Pipe(dp, { slots: 8 });
  let seq = 0, queued = 0;
  const moves: number[] = [];
  for (;;) {
    const n = p.master.tx.send(Array.from({ length: 8 }, (_, i) => frame(B, A, 64, seq + i)));
    seq += n; queued += n;
    const m = p.master.txsync();
    moves.push(m);
    if (m === 0) break;
  }
  assert.deepEqual(moves, [7, 0], 'the reader holds 7, then nothing moves');
  assert.equal(queued, 14, 'the writer queued 7 more it still holds');
  assert.equal(p.master.txsync(), 0, 'a sync without reads moves nothing');
  assert.equal(p.slave.rxsync(), 7);
  const first = p.slave.rx.recv(3);
  assert.deepEqual(first.map(seqOf), [0, 1, 2]);
  assert.equal(p.slave.rxsync(), 4, 'released 3, 4 still readable');
  assert.equal(p.master.txsync(), 3, 'exactly the 3 released slots are refilled');
  assert.equal(p.master.txsync(), 0);
  const rest: number[] = [];
  for (let i = 0; i < 10 && rest.length < 11; i++) {
    rest.push(...p.slave.recv().map(seqOf));
    p.master.txsync();
  }
  assert.deepEqual(rest, Array.from({ length: 11 }, (_, i) => i + 3), 'every frame once, in order');
  assert.equal(p.master.tx.packets, 14n);
  assertAudit(p.region);
  p.close();
});

test('a 700-byte frame over 256-byte buffers travels as 3 slots and arrives whole', () => {
  const dp = new Datapath();
  const p = new Pipe(dp, { slots: 16, bufSize: 256 });
  const f = frame(B, A, 700, 77);
  assert.equal(p.master.tx.send([f]), 1);
  assert.equal(p.master.tx.head, 3);
  assert.equal(p.master.txsync(), 1, 'one packet moved');
  assert.equal(p.slave.rxsync(), 3, 'three slots readable');
  const rx = p.slave.rx;
  assert.deepEqual([0, 1, 2].map((i) => rx.len(i)), [256, 256, 188]);
  assert.deepEqual([0, 1, 2].map((i) => rx.flags(i)), [NS_MOREFRAG | NS_BUF_CHANGED, NS_MOREFRAG | NS_BUF_CHANGED, NS_BUF_CHANGED]);
  const got = rx.recv();
  assert.equal(got.length, 1);
  assert.deepEqual(got[0], f);
  assert.equal(p.master.tx.bytes, 700n);
  p.slave.rxsync();
  assertAudit(p.region);
  p.close();
});

test('a multi-slot frame is invisible to the reader until its last fragment is sent', () => {
  const dp = new Datapath();
  const p = new Pipe(dp, { slots: 16, bufSize: 256 });
  const f = frame(B, A, 600, 5);
  const [x, y, z] = split(f, [256, 256, 88]);
  sendFrags(p.master.tx, [x, y], 0, false); // both carry MOREFRAG: the chain is unfinished
  assert.equal(p.master.txsync(), 0, 'an unfinished chain is held back, not an error');
  assert.equal(p.master.tx.broken, false);
  assert.equal(p.slave.rxsync(), 0);
  sendFrags(p.master.tx, [z]);
  assert.equal(p.master.txsync(), 1);
  assert.deepEqual(p.slave.recv(), [f]);
  assertAudit(p.region);
  p.close();
});

test('64 fragments make a legal frame; a 65-slot chain breaks the ring with E_FRAGS', () => {
  const dp = new Datapath();
  const p = new Pipe(dp, { slots: 256, bufSize: 64 });
  const ok = frame(B, A, 64 * 64, 1);
  assert.equal(p.master.tx.send([ok]), 1);
  assert.equal(p.master.txsync(), 1);
  assert.deepEqual(p.slave.recv(), [ok]);
  assert.equal(p.master.tx.send([frame(B, A, 64 * 64 + 1, 2)]), 1);
  assertWasmapError(() => p.master.txsync(), 'E_FRAGS');
  assert.equal(p.master.tx.broken, true);
  assert.equal(p.master.tx.error, dp.abi.E_FRAGS);
  assert.deepEqual(p.slave.recv(), [], 'nothing of it reached the reader');
  assertAudit(p.region);
  p.close();
});

test('zero copy: buffers are swapped between the rings, never copied', () => {
  const dp = new Datapath();
  const p = new Pipe(dp, { slots: 8 });
  const txIdx = [0, 1, 2].map((i) => p.master.tx.bufIdx(i));
  const rxIdx = [0, 1, 2].map((i) => p.slave.rx.bufIdx(i));
  p.master.send([frame(B, A, 60, 0), frame(B, A, 60, 1), frame(B, A, 60, 2)]);
  assert.deepEqual([0, 1, 2].map((i) => p.slave.rx.bufIdx(i)), txIdx, 'the reader got the writer\'s buffers');
  assert.deepEqual([0, 1, 2].map((i) => p.master.tx.bufIdx(i)), rxIdx, 'and the writer the reader\'s free ones');
  assert.deepEqual([0, 1, 2].map((i) => p.master.tx.flags(i)), [NS_BUF_CHANGED, NS_BUF_CHANGED, NS_BUF_CHANGED]);
  assert.deepEqual(p.slave.recv().map(seqOf), [0, 1, 2]);
  assertAudit(p.region);
  p.close();
});

test('a head beyond the ring: txsync raises E_HEAD, the ring stays broken until reset', () => {
  const dp = new Datapath();
  const p = new Pipe(dp, { slots: 8 });
  p.master.send([frame(B, A, 60, 0)]);
  p.master.tx.head = 8;
  assert.throws(() => p.master.txsync(), (e: unknown) => e instanceof WasmapError && e.code === 'E_HEAD');
  assert.equal(p.master.tx.broken, true);
  assert.equal(p.master.tx.error, dp.abi.E_HEAD);
  assertWasmapError(() => p.master.txsync(), 'E_BROKEN', 'reset');
  assert.deepEqual(p.slave.recv().map(seqOf), [0], 'what was sent before still arrives');
  dp.fn.kring_reset(p.master.tx.kring);
  assert.equal(p.master.tx.broken, false);
  assert.equal(p.master.tx.head, 1, 'head back at hwcur');
  assert.equal(p.master.send([frame(B, A, 60, 1)]), 1);
  assert.deepEqual(p.slave.recv().map(seqOf), [1]);
  assertAudit(p.region);
  p.close();
});

test('a reader that moves head past tail gets E_HEAD; cur past tail is E_CUR', () => {
  const dp = new Datapath();
  const p = new Pipe(dp, { slots: 8 });
  p.master.send([frame(B, A, 60, 0), frame(B, A, 60, 1)]);
  assert.equal(p.slave.rxsync(), 2);
  p.slave.rx.head = 5; p.slave.rx.cur = 5; // only [0, 2) is the reader's
  assertWasmapError(() => p.slave.rxsync(), 'E_HEAD', 'head is outside');
  assert.equal(p.slave.rx.broken, true);
  assert.equal(p.master.txsync(), 0, 'a writer facing a broken reader holds its packets');
  dp.fn.kring_reset(p.slave.rx.kring);
  assert.deepEqual([p.slave.rx.head, p.slave.rx.tail], [0, 2]);
  p.slave.rx.cur = 3; // head 0 is fine, cur beyond tail is not
  assertWasmapError(() => p.slave.rxsync(), 'E_CUR');
  assert.equal(p.slave.rx.error, dp.abi.E_CUR);
  dp.fn.kring_reset(p.slave.rx.kring);
  assert.deepEqual(p.slave.recv().map(seqOf), [0, 1], 'the frames survive both resets');
  assertAudit(p.region);
  p.close();
});

test('bad slots: a reserved buffer index (E_BUF_IDX) or a length beyond the buffer (E_BUF_LEN); reset repairs the pool', () => {
  const dp = new Datapath();
  const p = new Pipe(dp, { slots: 8, bufSize: 256 });
  const tx = p.master.tx;
  tx.send([frame(B, A, 60, 0), frame(B, A, 60, 1)]);
  tx.setBufIdx(1, 1);
  assertWasmapError(() => p.master.txsync(), 'E_BUF_IDX', 'reserved');
  assert.deepEqual(p.slave.recv(), [], 'nothing moved, not even the good first slot');
  assert.notDeepEqual(p.region.audit(), [], 'buffer lost while the ring is broken');
  dp.fn.kring_reset(tx.kring);
  assertAudit(p.region);
  tx.send([frame(B, A, 60, 2)]);
  tx.setLen(tx.head - 1, 257);
  assertWasmapError(() => p.master.txsync(), 'E_BUF_LEN');
  dp.fn.kring_reset(tx.kring);
  tx.send([frame(B, A, 60, 3)]);
  assert.equal(p.master.txsync(), 1);
  assert.deepEqual(p.slave.recv().map(seqOf), [3]);
  assertAudit(p.region);
  p.close();
});
