// Zero-copy pipes: buffer swapping, flow control, wrap-around, MOREFRAG chains, bad slots,
// and region_repair / kring_reset re-accounting buffers. Every scenario ends with the
// buffer-conservation audit.
import {
  HxPipe, hx_pipe, hx_pipe_desc, hx_region, hx_ring, hx_slot, hx_idx, hx_len, hx_flags, hx_set_idx, hx_set_len,
  hx_set_flags, hx_head, hx_tail, hx_set_hc, hx_advance, hx_space, hx_buf, hx_ring_bytes, hx_snap,
  hx_diff, hx_audit, hx_send, hx_recv, hx_len_for,
} from './helpers.include';
import {
  NS_BUF_CHANGED, NS_MOREFRAG, NS_REPORT, NS_NO_LEARN, KR_HWCUR, KR_HWTAIL, KR_PEER, KR_FLAGS,
  KR_ERR, KRF_BROKEN, RGN_NBUFS, RGN_NTX, RGN_NRX, RGN_KRINGS, KRING_SIZE, DIR_TX, DIR_RX,
  E_OK, E_INVAL, E_XREGION, E_HEAD, E_BUF_IDX, E_BUF_LEN, E_FRAGS, E_BROKEN,
} from '../../assembly/abi';
import { region_kring, pool_alloc, pool_free, pool_free_count } from '../../assembly/region';
import { kring_reset } from '../../assembly/ring';
import { region_repair } from '../../assembly/repair';
import { pipe_link, pipe_txsync, rxsync } from '../../assembly/pipe';

/** Queue one packet of `frags` slots at the tx head (MOREFRAG on all but the last), lens 100+i. */
function queue_frags(k: usize, frags: u32, tag: u32): void {
  const n = load<u32>(hx_ring(k), 8);
  let h = hx_head(k);
  for (let i: u32 = 0; i < frags; i++) {
    store<u32>(hx_buf(k, h), tag + i);
    hx_set_len(k, h, 100 + i);
    hx_set_flags(k, h, i + 1 < frags ? NS_MOREFRAG : 0);
    h = (h + 1) % n;
  }
  hx_set_hc(k, h, h);
}

/** Bytes of both rings of a pipe, for "nothing moved" checks. */
class Snap { tx: usize = 0; rx: usize = 0; tb: u32 = 0; rb: u32 = 0; }
function snap(p: HxPipe): Snap {
  const s = new Snap();
  s.tb = hx_ring_bytes(p.tx); s.rb = hx_ring_bytes(p.rx);
  s.tx = hx_snap(hx_ring(p.tx), s.tb); s.rx = hx_snap(hx_ring(p.rx), s.rb);
  return s;
}
function changed(p: HxPipe, s: Snap): u32 {
  return hx_diff(hx_ring(p.tx), s.tx, s.tb) + hx_diff(hx_ring(p.rx), s.rx, s.rb);
}

/** Deterministic pseudo-random numbers. */
let seed: u32 = 12345;
function rnd(m: u32): u32 { seed = seed * 1103515245 + 12345; return (seed >> 16) % m; }

describe('pipe_link', () => {
  it('links tx -> rx of one region and refuses anything else', () => {
    const p = hx_pipe(8);
    expect(<usize>load<u32>(p.tx, KR_PEER)).toBe(p.rx);
    const q = hx_pipe(8);
    expect(pipe_link(p.tx, q.rx)).toBe(E_XREGION);
    expect(pipe_link(p.rx, p.tx)).toBe(E_INVAL);
    expect(pipe_link(p.tx, p.tx)).toBe(E_INVAL);
    expect(pipe_link(p.rx, p.rx)).toBe(E_INVAL);
    expect(pipe_link(0, p.rx)).toBe(E_INVAL);
    expect(pipe_link(p.tx, 0)).toBe(E_INVAL);
    expect(<usize>load<u32>(p.tx, KR_PEER)).toBe(p.rx); // failed links change nothing
    expect(pipe_link(p.tx, p.rx)).toBe(E_OK);
    expect(hx_audit(p.desc) + hx_audit(q.desc)).toBe(0);
  });
});

describe('pipe txsync', () => {
  it('moves one packet by swapping buffer indices, flags as specified', () => {
    const p = hx_pipe(8);
    const a = hx_idx(p.tx, 0), b = hx_idx(p.rx, 0);
    expect(a).not.toBe(b);
    store<u64>(hx_buf(p.tx, 0), 0x1122334455667788);
    hx_set_len(p.tx, 0, 60);
    hx_set_flags(p.tx, 0, NS_REPORT | NS_NO_LEARN | 0x0300); // dropped on the way
    hx_advance(p.tx, 1);
    expect(pipe_txsync(p.tx)).toBe(1);
    expect(hx_idx(p.rx, 0)).toBe(a);
    expect(hx_len(p.rx, 0)).toBe(60);
    expect(hx_flags(p.rx, 0)).toBe(NS_BUF_CHANGED);
    expect(hx_idx(p.tx, 0)).toBe(b);
    expect(hx_flags(p.tx, 0)).toBe(NS_BUF_CHANGED);
    expect(load<u32>(p.tx, KR_HWCUR)).toBe(1);
    expect(hx_tail(p.tx)).toBe(0);                  // hwcur - 1
    expect(load<u32>(p.rx, KR_HWTAIL)).toBe(1);
    expect(hx_tail(p.rx)).toBe(0);                  // the reader's tail moves on its own rxsync
    expect(rxsync(p.rx)).toBe(1);
    expect(hx_tail(p.rx)).toBe(1);
    expect(load<u64>(hx_buf(p.rx, 0))).toBe(0x1122334455667788); // zero copy: same bytes
    expect(hx_audit(p.desc)).toBe(0);
  });

  it('does nothing when nothing is queued', () => {
    const p = hx_pipe(8);
    const s = snap(p);
    expect(pipe_txsync(p.tx)).toBe(0);
    expect(changed(p, s)).toBe(0);
    expect(load<u32>(p.tx, KR_HWCUR)).toBe(0);
    expect(load<u32>(p.rx, KR_HWTAIL)).toBe(0);
    expect(rxsync(p.rx)).toBe(0);
    expect(hx_audit(p.desc)).toBe(0);
  });

  it('moves a batch in order; reader sees lengths and payloads', () => {
    const p = hx_pipe(16);
    hx_send(p.tx, 10, 100);
    expect(pipe_txsync(p.tx)).toBe(10);
    expect(load<u32>(p.tx, KR_HWCUR)).toBe(10);
    expect(hx_tail(p.tx)).toBe(9);
    expect(hx_space(p.tx)).toBe(15);
    expect(rxsync(p.rx)).toBe(10);
    for (let i: u32 = 0; i < 10; i++) expect(hx_flags(p.rx, i)).toBe(NS_BUF_CHANGED);
    expect(hx_recv(p.rx, 16, 100)).toBe(10);
    expect(rxsync(p.rx)).toBe(0);
    expect(hx_audit(p.desc)).toBe(0);
  });

  it('rejects a tx head past tail with E_HEAD and moves nothing', () => {
    const p = hx_pipe(8);
    hx_send(p.tx, 7, 0);
    expect(pipe_txsync(p.tx)).toBe(7);
    hx_send(p.tx, 3, 7);
    expect(pipe_txsync(p.tx)).toBe(0);       // reader full: tx hwcur 7, tail 6, head 2
    hx_set_hc(p.tx, 7, 7);                   // past tail
    const s = snap(p);
    expect(pipe_txsync(p.tx)).toBe(E_HEAD);
    expect(changed(p, s)).toBe(0);
    expect(load<u32>(p.rx, KR_HWTAIL)).toBe(7);
    expect(hx_audit(p.desc)).toBe(0);
  });
});

describe('pipe flow control', () => {
  it('holds packets when the reader is full: send until full, read k, send again moves exactly k', () => {
    for (let k: u32 = 1; k <= 6; k++) {
      const p = hx_pipe(8);
      hx_send(p.tx, 7, 0);
      expect(pipe_txsync(p.tx)).toBe(7);
      hx_send(p.tx, 7, 7);                      // the whole tx ring again
      expect(pipe_txsync(p.tx)).toBe(0);        // pending, not dropped
      expect(load<u32>(p.tx, KR_HWCUR)).toBe(7);
      expect(hx_tail(p.tx)).toBe(6);            // tail stays behind: hwcur - 1
      expect(hx_space(p.tx)).toBe(0);
      expect(rxsync(p.rx)).toBe(7);
      expect(hx_recv(p.rx, k, 0)).toBe(<i32>k);
      expect(rxsync(p.rx)).toBe(<i32>(7 - k));
      expect(pipe_txsync(p.tx)).toBe(<i32>k);   // exactly k more
      expect(pipe_txsync(p.tx)).toBe(0);        // and no more
      expect(hx_tail(p.tx)).toBe((7 + k + 7) % 8);
      expect(hx_space(p.tx)).toBe(k);
      // drain everything; the rest arrives in order
      expect(rxsync(p.rx)).toBe(7);
      expect(hx_recv(p.rx, 7, k)).toBe(7);
      expect(rxsync(p.rx)).toBe(0);
      expect(pipe_txsync(p.tx)).toBe(<i32>(7 - k));
      expect(rxsync(p.rx)).toBe(<i32>(7 - k));
      expect(hx_recv(p.rx, 7, 7 + k)).toBe(<i32>(7 - k));
      expect(rxsync(p.rx)).toBe(0);
      expect(hx_tail(p.tx)).toBe((hx_head(p.tx) + 7) % 8); // all free again
      expect(hx_audit(p.desc)).toBe(0);
    }
  });

  it('rx ring keeps one slot empty: at most n-1 packets are readable', () => {
    const p = hx_pipe(4);
    hx_send(p.tx, 3, 0);
    expect(pipe_txsync(p.tx)).toBe(3);
    hx_send(p.tx, 1, 3);
    expect(pipe_txsync(p.tx)).toBe(0);
    expect(rxsync(p.rx)).toBe(3);
    expect(load<u32>(p.rx, KR_HWTAIL)).toBe(3);
    expect(hx_audit(p.desc)).toBe(0);
  });

  it('wraps around many times with a reader at a different pace, losing and reordering nothing', () => {
    const p = hx_pipe(8);
    seed = 7;
    let sent: u32 = 0, got: u32 = 0, moved: u32 = 0;
    for (let r: u32 = 0; r < 500; r++) {
      const can = hx_space(p.tx);
      const burst = can == 0 ? 0 : rnd(can + 1);
      hx_send(p.tx, burst, sent);
      sent += burst;
      const m = pipe_txsync(p.tx);
      expect(m).toBeGreaterThanOrEqual(0);
      moved += <u32>m;
      expect(hx_tail(p.tx)).toBe((load<u32>(p.tx, KR_HWCUR) + 7) % 8);
      expect(<u32>rxsync(p.rx)).toBe(moved - got);
      const c = hx_recv(p.rx, rnd(9), got);
      expect(c).toBeGreaterThanOrEqual(0);
      got += <u32>c;
      expect(hx_audit(p.desc)).toBe(0);
    }
    // drain
    for (let r = 0; r < 4; r++) {
      moved += <u32>pipe_txsync(p.tx);
      rxsync(p.rx);
      got += <u32>hx_recv(p.rx, 8, got);
      rxsync(p.rx);
    }
    expect(moved).toBe(sent);
    expect(got).toBe(sent);
    expect(sent).toBeGreaterThan(500);
    expect(hx_audit(p.desc)).toBe(0);
  });

  it('passes a buffer the reader swapped in back to the writer', () => {
    const p = hx_pipe(8, 2048, 2);
    hx_send(p.tx, 7, 0);
    expect(pipe_txsync(p.tx)).toBe(7);
    expect(rxsync(p.rx)).toBe(7);
    const old = hx_idx(p.rx, 0);
    const x = pool_alloc(p.desc);
    expect(x).toBeGreaterThan(1);
    hx_set_idx(p.rx, 0, x);                          // the reader keeps `old`, gives back x
    hx_set_flags(p.rx, 0, NS_BUF_CHANGED);
    expect(pool_free(p.desc, old)).toBe(E_OK);
    hx_advance(p.rx, 2);                             // release rx slots 0 and 1: room 2
    expect(rxsync(p.rx)).toBe(5);
    hx_send(p.tx, 2, 7);                             // tx slots 7 and 0 -> rx slots 7 and 0
    expect(pipe_txsync(p.tx)).toBe(2);
    expect(hx_idx(p.tx, 0)).toBe(x);
    expect(pool_free_count(p.desc)).toBe(2);
    expect(hx_audit(p.desc)).toBe(0);
  });
});

describe('pipe MOREFRAG', () => {
  it('delivers multi-slot packets whole, MOREFRAG on all but the last fragment', () => {
    const p = hx_pipe(16);
    queue_frags(p.tx, 3, 1000);
    queue_frags(p.tx, 1, 2000);
    queue_frags(p.tx, 2, 3000);
    expect(pipe_txsync(p.tx)).toBe(3);               // packets, not slots
    expect(load<u32>(p.tx, KR_HWCUR)).toBe(6);
    expect(rxsync(p.rx)).toBe(6);                    // slots
    const want_flags: u32[] = [NS_MOREFRAG, NS_MOREFRAG, 0, 0, NS_MOREFRAG, 0];
    const want_tag: u32[] = [1000, 1001, 1002, 2000, 3000, 3001];
    const want_len: u32[] = [100, 101, 102, 100, 100, 101];
    for (let i: u32 = 0; i < 6; i++) {
      expect(hx_flags(p.rx, i)).toBe(want_flags[i] | NS_BUF_CHANGED);
      expect(load<u32>(hx_buf(p.rx, i))).toBe(want_tag[i]);
      expect(hx_len(p.rx, i)).toBe(want_len[i]);
      expect(hx_flags(p.tx, i)).toBe(NS_BUF_CHANGED); // MOREFRAG does not stay on the tx side
    }
    expect(hx_audit(p.desc)).toBe(0);
  });

  it('holds back a chain left open at head, not an error, until its last fragment is queued', () => {
    const p = hx_pipe(16);
    queue_frags(p.tx, 1, 10);                        // a whole packet
    queue_frags(p.tx, 3, 20);                        // then 3 fragments...
    hx_set_flags(p.tx, 3, NS_MOREFRAG);              // ...whose last one says "more"
    expect(pipe_txsync(p.tx)).toBe(1);
    expect(load<u32>(p.tx, KR_HWCUR)).toBe(1);
    expect(hx_tail(p.tx)).toBe(0);
    expect(load<u32>(p.rx, KR_HWTAIL)).toBe(1);
    expect(load<u32>(p.tx, KR_FLAGS) & KRF_BROKEN).toBe(0);
    expect(pipe_txsync(p.tx)).toBe(0);               // still open
    expect(load<u32>(p.rx, KR_HWTAIL)).toBe(1);
    queue_frags(p.tx, 1, 23);                        // the last fragment
    expect(pipe_txsync(p.tx)).toBe(1);
    expect(load<u32>(p.rx, KR_HWTAIL)).toBe(5);
    expect(rxsync(p.rx)).toBe(5);
    expect(hx_flags(p.rx, 3)).toBe(NS_MOREFRAG | NS_BUF_CHANGED);
    expect(hx_flags(p.rx, 4)).toBe(NS_BUF_CHANGED);
    expect(load<u32>(hx_buf(p.rx, 4))).toBe(23);
    expect(hx_audit(p.desc)).toBe(0);
  });

  it('does not split a packet when the reader has room for only part of it', () => {
    const p = hx_pipe(8);
    hx_send(p.tx, 5, 0);
    expect(pipe_txsync(p.tx)).toBe(5);               // reader room 2
    queue_frags(p.tx, 3, 50);
    expect(pipe_txsync(p.tx)).toBe(0);
    expect(load<u32>(p.rx, KR_HWTAIL)).toBe(5);
    expect(load<u32>(p.tx, KR_HWCUR)).toBe(5);
    expect(rxsync(p.rx)).toBe(5);
    expect(hx_recv(p.rx, 1, 0)).toBe(1);
    expect(rxsync(p.rx)).toBe(4);                    // room 3 now
    expect(pipe_txsync(p.tx)).toBe(1);
    expect(load<u32>(p.rx, KR_HWTAIL)).toBe(0);      // 5, 6, 7 -> wraps to 0
    expect(hx_flags(p.rx, 5)).toBe(NS_MOREFRAG | NS_BUF_CHANGED);
    expect(hx_flags(p.rx, 7)).toBe(NS_BUF_CHANGED);
    expect(hx_audit(p.desc)).toBe(0);
  });

  it('moves a packet of exactly 64 fragments', () => {
    const p = hx_pipe(128);
    queue_frags(p.tx, 64, 0);
    queue_frags(p.tx, 1, 500);
    expect(pipe_txsync(p.tx)).toBe(2);
    expect(rxsync(p.rx)).toBe(65);
    for (let i: u32 = 0; i < 63; i++) expect(hx_flags(p.rx, i)).toBe(NS_MOREFRAG | NS_BUF_CHANGED);
    expect(hx_flags(p.rx, 63)).toBe(NS_BUF_CHANGED);
    expect(load<u32>(hx_buf(p.rx, 63))).toBe(63);
    expect(hx_audit(p.desc)).toBe(0);
  });

  it('holds back an open chain of 63 fragments without error', () => {
    const p = hx_pipe(128);
    queue_frags(p.tx, 64, 0);
    hx_set_hc(p.tx, 63, 63);                         // the last fragment not queued yet
    expect(pipe_txsync(p.tx)).toBe(0);
    expect(load<u32>(p.tx, KR_FLAGS) & KRF_BROKEN).toBe(0);
    expect(load<u32>(p.tx, KR_HWCUR)).toBe(0);
    hx_set_hc(p.tx, 64, 64);
    expect(pipe_txsync(p.tx)).toBe(1);
    expect(hx_audit(p.desc)).toBe(0);
  });

  it('rejects a chain reaching 64 fragments with E_FRAGS and moves nothing', () => {
    const p = hx_pipe(128);
    queue_frags(p.tx, 1, 0);                         // a good packet first: it must not move either
    queue_frags(p.tx, 66, 1);
    for (let i: u32 = 1; i <= 66; i++) hx_set_flags(p.tx, i, NS_MOREFRAG); // 66 slots, all "more"
    const s = snap(p);
    expect(pipe_txsync(p.tx)).toBe(E_FRAGS);
    expect(changed(p, s)).toBe(0);
    expect(load<u32>(p.rx, KR_HWTAIL)).toBe(0);
    expect(load<i32>(p.tx, KR_ERR)).toBe(E_FRAGS);
    expect(pipe_txsync(p.tx)).toBe(E_BROKEN);
    kring_reset(p.tx);
    expect(hx_head(p.tx)).toBe(0);
    expect(hx_audit(p.desc)).toBe(0);
  });

  it('rejects exactly at the 64th MOREFRAG fragment, even with the end queued after it', () => {
    const p = hx_pipe(128);
    queue_frags(p.tx, 65, 0);                        // 64 MOREFRAG slots + an end: 65 fragments
    const s = snap(p);
    expect(pipe_txsync(p.tx)).toBe(E_FRAGS);
    expect(changed(p, s)).toBe(0);
    expect(load<u32>(p.rx, KR_HWTAIL)).toBe(0);
    kring_reset(p.tx);
    expect(hx_audit(p.desc)).toBe(0);
  });
});

describe('pipe bad slots', () => {
  it('rejects reserved and out-of-range buf_idx with E_BUF_IDX, nothing moved, ring untouched', () => {
    const bad: u32[] = [0, 1, 0xffffffff, 0];        // the last is replaced by nbufs below
    for (let j = 0; j < bad.length; j++) {
      const p = hx_pipe(8);
      let v = bad[j];
      if (j == 3) v = load<u32>(p.desc, RGN_NBUFS);
      hx_send(p.tx, 3, 0);
      hx_set_idx(p.tx, 1, v);
      const s = snap(p);
      expect(pipe_txsync(p.tx)).toBe(E_BUF_IDX);
      expect(changed(p, s)).toBe(0);
      expect(load<u32>(p.tx, KR_HWCUR)).toBe(0);
      expect(load<u32>(p.rx, KR_HWTAIL)).toBe(0);
      expect(load<u32>(p.tx, KR_FLAGS) & KRF_BROKEN).toBe(KRF_BROKEN);
      expect(load<i32>(p.tx, KR_ERR)).toBe(E_BUF_IDX);
      expect(hx_audit(p.desc)).toBe(2);                // slot 1's buffer lost + the bad index
      expect(pipe_txsync(p.tx)).toBe(E_BROKEN);
      kring_reset(p.tx);
      expect(hx_audit(p.desc)).toBe(0);                // repaired
      expect(hx_head(p.tx)).toBe(0);
      expect(hx_tail(p.tx)).toBe(7);
      hx_send(p.tx, 3, 0);
      expect(pipe_txsync(p.tx)).toBe(3);               // works again
      expect(rxsync(p.rx)).toBe(3);
      expect(hx_recv(p.rx, 3, 0)).toBe(3);
      expect(hx_audit(p.desc)).toBe(0);
    }
  });

  it('rejects len > buf_size with E_BUF_LEN and accepts len == buf_size', () => {
    const p = hx_pipe(8, 256);
    hx_send(p.tx, 2, 0);
    hx_set_len(p.tx, 0, 256);
    hx_set_len(p.tx, 1, 257);
    const s = snap(p);
    expect(pipe_txsync(p.tx)).toBe(E_BUF_LEN);
    expect(changed(p, s)).toBe(0);
    expect(load<u32>(p.rx, KR_HWTAIL)).toBe(0);
    expect(load<i32>(p.tx, KR_ERR)).toBe(E_BUF_LEN);
    kring_reset(p.tx);
    expect(hx_len(p.tx, 1)).toBe(0);                 // as netmap_ring_reinit: oversized len -> 0
    expect(hx_len(p.tx, 0)).toBe(256);               // a valid len is kept
    expect(hx_audit(p.desc)).toBe(0);
    hx_send(p.tx, 1, 0);
    hx_set_len(p.tx, 0, 256);
    expect(pipe_txsync(p.tx)).toBe(1);
    expect(rxsync(p.rx)).toBe(1);
    expect(hx_len(p.rx, 0)).toBe(256);
    expect(hx_audit(p.desc)).toBe(0);
  });

  it('rejects a bad slot among packets the full reader could not take yet, moving nothing', () => {
    const p = hx_pipe(8);
    hx_send(p.tx, 6, 0);
    expect(pipe_txsync(p.tx)).toBe(6);               // reader room 1
    hx_send(p.tx, 3, 6);                             // tx slots 6, 7, 0
    hx_set_len(p.tx, 0, 4000);                       // the third is bad
    const s = snap(p);
    expect(pipe_txsync(p.tx)).toBe(E_BUF_LEN);
    expect(changed(p, s)).toBe(0);
    expect(load<u32>(p.rx, KR_HWTAIL)).toBe(6);
    kring_reset(p.tx);
    expect(hx_audit(p.desc)).toBe(0);
  });
});

describe('region_repair and kring_reset', () => {
  it('finds nothing to repair in a healthy region and changes nothing', () => {
    const p = hx_pipe(8, 2048, 3);
    hx_send(p.tx, 5, 0);
    expect(pipe_txsync(p.tx)).toBe(5);
    const s = snap(p);
    const before = pool_free_count(p.desc);
    expect(region_repair(p.desc, 0)).toBe(0);
    expect(changed(p, s)).toBe(0);
    expect(pool_free_count(p.desc)).toBe(before);
    expect(hx_audit(p.desc)).toBe(0);
  });

  it('reset replaces a duplicate index in one ring with the buffer nobody holds', () => {
    const p = hx_pipe(8);
    const lost = hx_idx(p.tx, 5);
    const kept = hx_idx(p.tx, 2);
    hx_set_idx(p.tx, 5, kept);
    hx_set_len(p.tx, 5, 77);
    expect(hx_audit(p.desc)).toBe(2);
    hx_set_hc(p.tx, 6, 6);
    expect(pipe_txsync(p.tx)).toBe(6);               // a duplicate is in range: not a tx error
    // slot contents moved to rx 0..5; the duplicate now sits in rx slots 2 and 5
    expect(hx_idx(p.rx, 2)).toBe(kept);
    expect(hx_idx(p.rx, 5)).toBe(kept);
    kring_reset(p.rx);
    expect(hx_audit(p.desc)).toBe(0);
    expect(hx_idx(p.rx, 2)).toBe(kept);              // the first holder keeps it
    expect(hx_idx(p.rx, 5)).toBe(lost);              // the other gets the unclaimed buffer
    expect(hx_len(p.rx, 5)).toBe(0);
  });

  it('repairs duplicates across rings and out-of-range indices, counting each replacement', () => {
    const desc = hx_region(2, 2, 8, 2048, 4);
    const nbufs = load<u32>(desc, RGN_NBUFS);
    const t0 = region_kring(desc, DIR_TX, 0), t1 = region_kring(desc, DIR_TX, 1);
    const r0 = region_kring(desc, DIR_RX, 0), r1 = region_kring(desc, DIR_RX, 1);
    hx_set_idx(r0, 3, hx_idx(t0, 3));                // duplicate across rings
    hx_set_idx(r1, 7, hx_idx(t1, 0));                // another
    hx_set_idx(t1, 4, 0);
    hx_set_idx(t1, 5, 1);
    hx_set_idx(r1, 0, nbufs);
    hx_set_idx(r1, 1, 0xffffffff);
    hx_set_len(r1, 1, 1500);
    expect(hx_audit(desc)).toBe(12);                 // 6 bad entries + 6 buffers held by nobody
    expect(region_repair(desc, 0)).toBe(6);
    expect(hx_audit(desc)).toBe(0);
    expect(pool_free_count(desc)).toBe(4);
    expect(hx_idx(t1, 0)).not.toBe(hx_idx(r1, 7));
    expect(hx_len(r1, 1)).toBe(0);
    expect(region_repair(desc, 0)).toBe(0);             // idempotent
  });

  it('a slot that took a buffer from the free stack keeps it; the stack stays whole', () => {
    const desc = hx_region(1, 1, 8, 2048, 4);
    const nbufs = load<u32>(desc, RGN_NBUFS);
    const k = region_kring(desc, DIR_TX, 0);
    const lost = hx_idx(k, 0);
    hx_set_idx(k, 0, nbufs - 1);                     // a buffer on the free stack
    expect(hx_audit(desc)).toBe(2);
    expect(region_repair(desc, 0)).toBe(1);             // one stack entry dropped, then refilled
    expect(hx_audit(desc)).toBe(0);
    expect(pool_free_count(desc)).toBe(4);
    expect(hx_idx(k, 0)).toBe(nbufs - 1);
    let found = false;
    for (let i: u32 = 0; i < 4; i++) { const b = pool_alloc(desc); if (b == lost) found = true; }
    expect(found).toBe(true);
    expect(pool_alloc(desc)).toBe(0);
  });

  it('the pipe keeps delivering in order after a repair', () => {
    const p = hx_pipe(8, 2048, 1);
    hx_send(p.tx, 4, 0);
    hx_set_idx(p.tx, 6, hx_idx(p.tx, 5));            // two free tx slots share a buffer
    expect(hx_audit(p.desc)).toBe(2);
    expect(pipe_txsync(p.tx)).toBe(4);
    hx_set_hc(p.tx, 8, 8);                           // head outside the ring: breaks it
    expect(pipe_txsync(p.tx)).toBe(E_HEAD);
    kring_reset(p.tx);
    expect(hx_audit(p.desc)).toBe(0);
    expect(hx_head(p.tx)).toBe(4);
    let sent: u32 = 4, got: u32 = 0;
    for (let r: u32 = 0; r < 40; r++) {
      expect(rxsync(p.rx)).toBe(<i32>(sent - got));
      const c = hx_recv(p.rx, 8, got);
      expect(c).toBe(<i32>(sent - got));
      got += <u32>c;
      expect(rxsync(p.rx)).toBe(0);
      hx_send(p.tx, 3, sent);
      sent += 3;
      expect(pipe_txsync(p.tx)).toBe(3);
    }
    expect(hx_audit(p.desc)).toBe(0);
  });

  it('a reader that copies a buffer the writer holds loses the copy on reset, the writer keeps it', () => {
    const p = hx_pipe(8);
    hx_send(p.tx, 3, 0);
    expect(pipe_txsync(p.tx)).toBe(3);
    expect(rxsync(p.rx)).toBe(3);
    const w = hx_idx(p.tx, 5);                       // a free writer slot's buffer
    store<u32>(hx_buf(p.tx, 5), 0xfeed);
    hx_set_idx(p.rx, 1, w);                          // the reader points a received slot at it
    hx_set_hc(p.rx, 5, 5);                           // and syncs a bad head
    expect(rxsync(p.rx)).toBe(E_HEAD);
    kring_reset(p.rx);
    expect(hx_audit(p.desc)).toBe(0);
    expect(hx_idx(p.tx, 5)).toBe(w);
    expect(load<u32>(hx_buf(p.tx, 5))).toBe(0xfeed);
    expect(hx_idx(p.rx, 1)).not.toBe(w);
  });

  // The ring being reset is the one that broke the rules: it gives up its duplicates, so a
  // writer that copies the index of a buffer the reader holds cannot cost the reader its frame.
  it('a writer that copies a buffer the reader holds does not cost the reader its frame', () => {
    const p = hx_pipe(8);
    hx_send(p.tx, 4, 0);
    expect(pipe_txsync(p.tx)).toBe(4);               // frames 0..3 in rx slots 0..3
    const r1 = hx_idx(p.rx, 1);                      // frame 1's buffer, now the reader's
    hx_set_idx(p.tx, 6, r1);                         // the writer points a free slot at it
    hx_set_hc(p.tx, 8, 8);                           // and syncs a bad head (outside the ring)
    expect(pipe_txsync(p.tx)).toBe(E_HEAD);
    kring_reset(p.tx);
    expect(hx_audit(p.desc)).toBe(0);
    expect(hx_idx(p.rx, 1)).toBe(r1);
    expect(hx_len(p.rx, 1)).toBe(hx_len_for(1));
    expect(rxsync(p.rx)).toBe(4);
    expect(hx_recv(p.rx, 4, 0)).toBe(4);
    expect(hx_idx(p.tx, 6)).not.toBe(r1);
  });
});
