// The sync prologue (head/cur validation), broken rings, kring_reset and tail restore. Ring
// states are reached through the real protocol (pipe txsync/rxsync), in non-wrapped and
// wrapped configurations, not only by poking kring fields.
import {
  HxPipe, hx_pipe, hx_pipe_desc, hx_region, hx_ring, hx_head, hx_cur, hx_tail, hx_set_hc, hx_advance,
  hx_ring_bytes, hx_snap, hx_diff, hx_audit, hx_send, hx_recv, hx_space,
} from './helpers.include';
import {
  RING_TAIL, KR_HWCUR, KR_HWTAIL, KR_RHEAD, KR_RCUR, KR_FLAGS, KR_ERR, KR_ERRORS, KRF_BROKEN,
  DIR_TX, DIR_RX, E_OK, E_HEAD, E_CUR, E_BROKEN,
} from '../../assembly/abi';
import { region_kring } from '../../assembly/region';
import { sync_prologue, kring_reset } from '../../assembly/ring';
import { pipe_txsync, rxsync } from '../../assembly/pipe';

/** tx: hwcur 7, hwtail 6, rhead 2: 3 packets pending [7, 2), the user owns [2, 6) (not wrapped). */
function flat_tx(): HxPipe {
  const p = hx_pipe(8);
  hx_send(p.tx, 7, 0);
  expect(pipe_txsync(p.tx)).toBe(7);           // the reader is now full
  hx_send(p.tx, 3, 7);
  expect(pipe_txsync(p.tx)).toBe(0);           // held back
  return p;
}

/** tx: hwcur 3, hwtail 2, rhead 6: pending [3, 6), the user owns [6, 2) (wrapped, tail < head). */
function wrapped_tx(): HxPipe {
  const p = hx_pipe(8);
  hx_send(p.tx, 7, 0);
  expect(pipe_txsync(p.tx)).toBe(7);
  expect(rxsync(p.rx)).toBe(7);
  expect(hx_recv(p.rx, 4, 0)).toBe(4);
  expect(rxsync(p.rx)).toBe(3);
  hx_send(p.tx, 7, 7);
  expect(pipe_txsync(p.tx)).toBe(4);           // room for 4 only
  return p;
}

/** rx: hwcur 0, hwtail 5, published: the user may consume [0, 5). */
function flat_rx(): HxPipe {
  const p = hx_pipe(8);
  hx_send(p.tx, 5, 0);
  expect(pipe_txsync(p.tx)).toBe(5);
  expect(rxsync(p.rx)).toBe(5);
  return p;
}

/** rx: hwcur 6, hwtail 3, published: the user may consume [6, 3) (wrapped). */
function wrapped_rx(): HxPipe {
  const p = hx_pipe(8);
  hx_send(p.tx, 6, 0);
  expect(pipe_txsync(p.tx)).toBe(6);
  expect(rxsync(p.rx)).toBe(6);
  expect(hx_recv(p.rx, 6, 0)).toBe(6);
  expect(rxsync(p.rx)).toBe(0);
  hx_send(p.tx, 5, 6);
  expect(pipe_txsync(p.tx)).toBe(5);
  expect(rxsync(p.rx)).toBe(5);
  return p;
}

/** Write head/cur, run the prologue, expect `err`, and check the ring was left exactly as written. */
function reject(k: usize, h: u32, c: u32, err: i32): void {
  hx_set_hc(k, h, c);
  const bytes = hx_ring_bytes(k);
  const snap = hx_snap(hx_ring(k), bytes);
  const hwcur = load<u32>(k, KR_HWCUR), hwtail = load<u32>(k, KR_HWTAIL), rhead = load<u32>(k, KR_RHEAD);
  const errors = load<u64>(k, KR_ERRORS);
  expect(sync_prologue(k)).toBe(err);
  expect(hx_diff(hx_ring(k), snap, bytes)).toBe(0);
  expect(load<u32>(k, KR_FLAGS) & KRF_BROKEN).toBe(KRF_BROKEN);
  expect(load<i32>(k, KR_ERR)).toBe(err);
  expect(load<u64>(k, KR_ERRORS)).toBe(errors + 1);
  expect(load<u32>(k, KR_HWCUR)).toBe(hwcur);
  expect(load<u32>(k, KR_HWTAIL)).toBe(hwtail);
  expect(load<u32>(k, KR_RHEAD)).toBe(rhead);
}
function accept(k: usize, h: u32, c: u32): void {
  hx_set_hc(k, h, c);
  expect(sync_prologue(k)).toBe(E_OK);
  expect(load<u32>(k, KR_RHEAD)).toBe(h);
  expect(load<u32>(k, KR_RCUR)).toBe(c);
  expect(load<u32>(k, KR_FLAGS) & KRF_BROKEN).toBe(0);
}

describe('tx prologue, fresh ring (rhead 0, tail 7)', () => {
  it('accepts head = cur = 0 (nothing queued) and keeps tail n-1', () => {
    const desc = hx_region(1, 1, 8, 2048, 0);
    const k = region_kring(desc, DIR_TX, 0);
    accept(k, 0, 0);
    expect(hx_tail(k)).toBe(7);
    expect(hx_audit(desc)).toBe(0);
  });

  it('accepts a full ring: head = cur = tail = n-1', () => {
    const desc = hx_region(1, 1, 8, 2048, 0);
    const k = region_kring(desc, DIR_TX, 0);
    accept(k, 7, 7);
    expect(hx_audit(desc)).toBe(0);
  });

  it('accepts cur ahead of head, up to tail', () => {
    const desc = hx_region(1, 1, 8, 2048, 0);
    const k = region_kring(desc, DIR_TX, 0);
    accept(k, 2, 5);
    accept(k, 3, 7);
    expect(hx_audit(desc)).toBe(0);
  });

  it('rejects cur behind head (E_CUR)', () => {
    const desc = hx_region(1, 1, 8, 2048, 0);
    reject(region_kring(desc, DIR_TX, 0), 3, 2, E_CUR);
    expect(hx_audit(desc)).toBe(0);
  });

  it('rejects head or cur outside the ring (>= n)', () => {
    const desc = hx_region(1, 1, 8, 2048, 0);
    reject(region_kring(desc, DIR_TX, 0), 8, 8, E_HEAD);
    const d2 = hx_region(1, 1, 8, 2048, 0);
    reject(region_kring(d2, DIR_TX, 0), 0xffffffff, 0, E_HEAD);
    const d3 = hx_region(1, 1, 8, 2048, 0);
    reject(region_kring(d3, DIR_TX, 0), 1, 8, E_CUR);
    expect(hx_audit(desc) + hx_audit(d2) + hx_audit(d3)).toBe(0);
  });
});

describe('tx prologue, non-wrapped (rhead 2, tail 6)', () => {
  it('reaches the state through the pipe', () => {
    const p = flat_tx();
    expect(load<u32>(p.tx, KR_HWCUR)).toBe(7);
    expect(load<u32>(p.tx, KR_HWTAIL)).toBe(6);
    expect(load<u32>(p.tx, KR_RHEAD)).toBe(2);
    expect(hx_head(p.tx)).toBe(2);
    expect(hx_tail(p.tx)).toBe(6);
    expect(hx_space(p.tx)).toBe(4);
    expect(hx_audit(p.desc)).toBe(0);
  });
  it('accepts head = cur = tail and cur ahead of head', () => {
    const p = flat_tx();
    accept(p.tx, 3, 6);
    accept(p.tx, 6, 6);
    expect(hx_audit(p.desc)).toBe(0);
  });
  it('rejects head past tail', () => {
    const p = flat_tx();
    reject(p.tx, 7, 7, E_HEAD);
    const q = flat_tx();
    reject(q.tx, 0, 0, E_HEAD); // inside the pending slots
    expect(hx_audit(p.desc) + hx_audit(q.desc)).toBe(0);
  });
  it('rejects head behind the last validated head', () => {
    const p = flat_tx();
    reject(p.tx, 1, 1, E_HEAD);
    expect(hx_audit(p.desc)).toBe(0);
  });
  it('rejects cur past tail and cur behind head', () => {
    const p = flat_tx();
    reject(p.tx, 3, 7, E_CUR);
    const q = flat_tx();
    reject(q.tx, 4, 3, E_CUR);
    expect(hx_audit(p.desc) + hx_audit(q.desc)).toBe(0);
  });
});

describe('tx prologue, wrapped (rhead 6, tail 2)', () => {
  it('reaches the state through the pipe', () => {
    const p = wrapped_tx();
    expect(load<u32>(p.tx, KR_HWCUR)).toBe(3);
    expect(load<u32>(p.tx, KR_HWTAIL)).toBe(2);
    expect(load<u32>(p.tx, KR_RHEAD)).toBe(6);
    expect(hx_head(p.tx)).toBe(6);
    expect(hx_tail(p.tx)).toBe(2);
    expect(hx_audit(p.desc)).toBe(0);
  });
  it('accepts every head across the wrap: 6, 7, 0, 1, 2', () => {
    const p = wrapped_tx();
    accept(p.tx, 6, 1);
    accept(p.tx, 7, 7);
    accept(p.tx, 0, 2);
    accept(p.tx, 1, 1);
    accept(p.tx, 2, 2);
    expect(hx_audit(p.desc)).toBe(0);
  });
  it('rejects head past tail (3, 4) and behind rhead (5)', () => {
    const a = wrapped_tx(); reject(a.tx, 3, 3, E_HEAD);
    const b = wrapped_tx(); reject(b.tx, 4, 4, E_HEAD);
    const c = wrapped_tx(); reject(c.tx, 5, 5, E_HEAD);
    expect(hx_audit(a.desc) + hx_audit(b.desc) + hx_audit(c.desc)).toBe(0);
  });
  it('rejects cur past tail across the wrap, and cur behind head across the wrap', () => {
    const a = wrapped_tx(); reject(a.tx, 0, 3, E_CUR);
    const b = wrapped_tx(); reject(b.tx, 7, 5, E_CUR);
    const c = wrapped_tx(); reject(c.tx, 1, 0, E_CUR);
    expect(hx_audit(a.desc) + hx_audit(b.desc) + hx_audit(c.desc)).toBe(0);
  });
});

describe('rx prologue', () => {
  it('fresh rx ring: only head = cur = 0 is valid', () => {
    const d = hx_region(1, 1, 8, 2048, 0);
    accept(region_kring(d, DIR_RX, 0), 0, 0);
    const e = hx_region(1, 1, 8, 2048, 0);
    reject(region_kring(e, DIR_RX, 0), 1, 1, E_HEAD);
    const f = hx_region(1, 1, 8, 2048, 0);
    reject(region_kring(f, DIR_RX, 0), 0, 1, E_CUR);
    expect(hx_audit(d) + hx_audit(e) + hx_audit(f)).toBe(0);
  });
  it('non-wrapped [0, 5): head up to 5, cur in [head, 5]', () => {
    const p = flat_rx();
    expect(hx_tail(p.rx)).toBe(5);
    accept(p.rx, 2, 5);
    accept(p.rx, 5, 5);
    const a = flat_rx(); reject(a.rx, 6, 6, E_HEAD);
    const b = flat_rx(); reject(b.rx, 2, 6, E_CUR);
    const c = flat_rx(); reject(c.rx, 3, 1, E_CUR);
    expect(hx_audit(p.desc) + hx_audit(a.desc) + hx_audit(b.desc) + hx_audit(c.desc)).toBe(0);
  });
  it('wrapped [6, 3): heads 6..3 across the wrap valid, 4 and 5 rejected', () => {
    const p = wrapped_rx();
    expect(load<u32>(p.rx, KR_HWCUR)).toBe(6);
    expect(load<u32>(p.rx, KR_HWTAIL)).toBe(3);
    expect(hx_tail(p.rx)).toBe(3);
    accept(p.rx, 7, 1);
    accept(p.rx, 3, 3);
    const a = wrapped_rx(); reject(a.rx, 4, 4, E_HEAD);
    const b = wrapped_rx(); reject(b.rx, 5, 5, E_HEAD);
    const c = wrapped_rx(); reject(c.rx, 0, 4, E_CUR);
    const d = wrapped_rx(); reject(d.rx, 7, 6, E_CUR);
    expect(hx_audit(p.desc) + hx_audit(a.desc) + hx_audit(b.desc) + hx_audit(c.desc) + hx_audit(d.desc)).toBe(0);
  });
  it('rx head is checked against hwcur, not against the user\'s last head', () => {
    // rhead == hwcur after every rxsync; the reader may re-sync the same head any number of times
    const p = flat_rx();
    expect(hx_recv(p.rx, 2, 0)).toBe(2);
    expect(rxsync(p.rx)).toBe(3);
    expect(rxsync(p.rx)).toBe(3);
    expect(load<u32>(p.rx, KR_HWCUR)).toBe(2);
    const a = flat_rx();
    expect(hx_recv(a.rx, 2, 0)).toBe(2);
    expect(rxsync(a.rx)).toBe(3);
    reject(a.rx, 1, 1, E_HEAD); // slot 1 was already released
    expect(hx_audit(p.desc) + hx_audit(a.desc)).toBe(0);
  });
});

describe('broken rings and kring_reset', () => {
  it('stays broken (E_BROKEN) for valid heads too, keeps the first error, until kring_reset', () => {
    const p = flat_tx();
    store<u32>(hx_ring(p.tx), 1, RING_TAIL);        // the user also scribbled on tail
    reject(p.tx, 7, 7, E_HEAD);
    expect(hx_tail(p.tx)).toBe(1);
    hx_set_hc(p.tx, 2, 2);
    expect(sync_prologue(p.tx)).toBe(E_BROKEN);
    expect(pipe_txsync(p.tx)).toBe(E_BROKEN);
    expect(load<i32>(p.tx, KR_ERR)).toBe(E_HEAD);
    expect(load<u32>(p.tx, KR_FLAGS) & KRF_BROKEN).toBe(KRF_BROKEN);
    kring_reset(p.tx);
    // head = cur = hwcur, tail = hwtail: the 3 pending packets are the user's again
    expect(hx_head(p.tx)).toBe(7);
    expect(hx_cur(p.tx)).toBe(7);
    expect(hx_tail(p.tx)).toBe(6);
    expect(load<u32>(p.tx, KR_FLAGS) & KRF_BROKEN).toBe(0);
    expect(load<i32>(p.tx, KR_ERR)).toBe(0);
    expect(hx_audit(p.desc)).toBe(0);
    // usable again: release room on the reader and send one packet
    expect(rxsync(p.rx)).toBe(7);
    expect(hx_recv(p.rx, 7, 0)).toBe(7);
    expect(rxsync(p.rx)).toBe(0);
    hx_send(p.tx, 1, 7);
    expect(pipe_txsync(p.tx)).toBe(1);
    expect(rxsync(p.rx)).toBe(1);
    expect(hx_recv(p.rx, 1, 7)).toBe(1);
    expect(hx_audit(p.desc)).toBe(0);
  });

  it('a broken rx ring answers E_BROKEN to rxsync until reset, then shows its frames again', () => {
    const p = flat_rx();
    store<u32>(hx_ring(p.rx), 2, RING_TAIL);
    reject(p.rx, 6, 6, E_HEAD);
    hx_set_hc(p.rx, 1, 1);
    expect(rxsync(p.rx)).toBe(E_BROKEN);
    expect(load<u32>(p.rx, KR_HWCUR)).toBe(0);
    kring_reset(p.rx);
    expect(hx_head(p.rx)).toBe(0);
    expect(hx_cur(p.rx)).toBe(0);
    expect(hx_tail(p.rx)).toBe(5);
    expect(rxsync(p.rx)).toBe(5);
    expect(hx_recv(p.rx, 5, 0)).toBe(5);
    expect(rxsync(p.rx)).toBe(0);
    expect(hx_audit(p.desc)).toBe(0);
  });

  it('counts each rejected sync once in KR_ERRORS across reset cycles', () => {
    const desc = hx_region(1, 1, 8, 2048, 0);
    const k = region_kring(desc, DIR_TX, 0);
    for (let i: u32 = 0; i < 3; i++) {
      reject(k, 9, 9, E_HEAD);
      kring_reset(k);
    }
    expect(load<u64>(k, KR_ERRORS)).toBe(3);
    accept(k, 1, 1);
    expect(hx_audit(desc)).toBe(0);
  });
});

describe('tail restore', () => {
  it('restores a tx tail the user overwrote, on a successful prologue', () => {
    const p = flat_tx();
    store<u32>(hx_ring(p.tx), 1, RING_TAIL);
    accept(p.tx, 3, 3);
    expect(hx_tail(p.tx)).toBe(6);
    expect(hx_audit(p.desc)).toBe(0);
  });
  it('restores an rx tail the user overwrote, and validates against hwtail, not the written tail', () => {
    const p = flat_rx();
    store<u32>(hx_ring(p.rx), 7, RING_TAIL);
    accept(p.rx, 1, 1);
    expect(hx_tail(p.rx)).toBe(5);
    const q = flat_rx();
    store<u32>(hx_ring(q.rx), 7, RING_TAIL); // a bigger tail does not make slot 6 readable
    reject(q.rx, 6, 6, E_HEAD);
    expect(hx_tail(q.rx)).toBe(7);          // a rejected sync leaves the ring as written
    expect(hx_audit(p.desc) + hx_audit(q.desc)).toBe(0);
  });
});

describe('many rounds over an 8-slot ring', () => {
  it('accepts every legal head step for 200 rounds, tail following hwcur - 1', () => {
    const p = hx_pipe(8);
    let sent: u32 = 0, got: u32 = 0;
    for (let r: u32 = 0; r < 200; r++) {
      const burst = 1 + (r * 5) % 7;
      hx_send(p.tx, burst, sent);
      sent += burst;
      expect(pipe_txsync(p.tx)).toBe(<i32>burst);
      expect(hx_tail(p.tx)).toBe((load<u32>(p.tx, KR_HWCUR) + 7) % 8);
      expect(hx_head(p.tx)).toBe(sent % 8);
      expect(rxsync(p.rx)).toBe(<i32>burst);
      expect(hx_recv(p.rx, 8, got)).toBe(<i32>burst);
      got += burst;
      expect(rxsync(p.rx)).toBe(0);
      hx_advance(p.tx, 0);
    }
    expect(got).toBe(sent);
    expect(hx_audit(p.desc)).toBe(0);
  });
});
