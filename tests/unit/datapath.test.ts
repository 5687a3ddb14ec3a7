// The Datapath: the module's exported netmap ABI against netmap's own numbers (sys/net/netmap.h),
// a real region's bytes read at netmap's offsets, the span allocator, and error mapping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Datapath, check, ERRORS } from '../../src/datapath.js';
import { WasmapError } from '../../src/errors.js';
import { Region } from '../../src/port.js';
import { assertWasmapError, errCode } from './helpers.js';

const PAGE = 65536;

test('the module exports netmap_slot, netmap_ring and netmap_if offsets byte-compatible with netmap.h', () => {
  const a = new Datapath().abi;
  const want: Record<string, number> = {
    // struct netmap_slot, 16 bytes
    SLOT_SIZE: 16, SLOT_BUF_IDX: 0, SLOT_LEN: 4, SLOT_FLAGS: 6, SLOT_PTR: 8,
    NS_BUF_CHANGED: 0x1, NS_REPORT: 0x2, NS_FORWARD: 0x4, NS_NO_LEARN: 0x8, NS_INDIRECT: 0x10, NS_MOREFRAG: 0x20,
    NETMAP_MAX_FRAGS: 64,
    // struct netmap_ring: 256-byte header
    RING_BUF_OFS: 0, RING_NUM_SLOTS: 8, RING_BUF_SIZE: 12, RING_RINGID: 16, RING_DIR: 18,
    RING_HEAD: 20, RING_CUR: 24, RING_TAIL: 28, RING_FLAGS: 32, RING_TS: 40, RING_SEM: 128, RING_SLOTS: 256,
    NR_TIMESTAMP: 0x2, NR_FORWARD: 0x4, DIR_TX: 0, DIR_RX: 1,
    // struct netmap_if
    IF_NAME: 0, IF_VERSION: 16, IF_FLAGS: 20, IF_TX_RINGS: 24, IF_RX_RINGS: 28, IF_BUFS_HEAD: 32, IF_RING_OFS: 56,
    // VALE
    SW_MAX_PORTS: 254, SW_BATCH_MAX: 1024,
  };
  const got = Object.fromEntries(Object.keys(want).map((k) => [k, a[k]]));
  assert.deepEqual(got, want);
});

test('the CSB entries (nm_csb_atok / nm_csb_ktoa) have netmap\'s layout', () => {
  const a = new Datapath().abi;
  assert.deepEqual(
    [a.CSB_ENTRY_SIZE, a.CSB_ATOK_HEAD, a.CSB_ATOK_CUR, a.CSB_ATOK_APPL_NEED_KICK, a.CSB_ATOK_SYNC_FLAGS,
      a.CSB_KTOA_HWCUR, a.CSB_KTOA_HWTAIL, a.CSB_KTOA_KERN_NEED_KICK],
    [64, 0, 4, 8, 12, 0, 4, 8]);
});

test('a region read at netmap\'s raw offsets: netmap_if, ring headers, slots and buffer addresses', () => {
  const dp = new Datapath();
  const r = new Region(dp, { txRings: 2, rxRings: 1, slots: 32, bufSize: 512, name: 'vale0:abi' });
  const dv = dp.dv, base = r.base;
  // netmap_if
  assert.equal(new TextDecoder().decode(dp.u8.subarray(base, base + 9)), 'vale0:abi');
  assert.equal(dp.u8[base + 9], 0, 'ni_name is NUL-terminated');
  assert.equal(dv.getUint32(base + 20, true), 1, 'ni_flags = NI_PRIV_MEM');
  assert.equal(dv.getUint32(base + 24, true), 2, 'ni_tx_rings');
  assert.equal(dv.getUint32(base + 28, true), 1, 'ni_rx_rings');
  const views = [r.ring('tx', 0), r.ring('tx', 1), r.ring('rx', 0)];
  for (let i = 0; i < 3; i++) {
    const ring = base + Number(dv.getBigInt64(base + 56 + 8 * i, true)); // ring_ofs[i], relative to the if
    assert.equal(ring, views[i].ring, `ring_ofs[${i}] points at ring ${i}, tx rings first`);
    assert.equal(dv.getUint32(ring + 8, true), 32, 'num_slots');
    assert.equal(dv.getUint32(ring + 12, true), 512, 'nr_buf_size');
    assert.equal(dv.getUint16(ring + 16, true), i < 2 ? i : 0, 'ringid');
    assert.equal(dv.getUint16(ring + 18, true), i < 2 ? 0 : 1, 'dir');
    assert.deepEqual([dv.getUint32(ring + 20, true), dv.getUint32(ring + 24, true), dv.getUint32(ring + 28, true)],
      [0, 0, i < 2 ? 31 : 0], 'head, cur, tail: tx starts with n-1 free slots, rx empty');
    const bufOfs = Number(dv.getBigInt64(ring, true));
    for (const s of [0, 1, 31]) {
      const slot = ring + 256 + 16 * s;
      const idx = dv.getUint32(slot, true);
      assert.ok(idx >= 2 && idx < r.nbufs, 'buffers 0 and 1 are never handed out');
      // NETMAP_BUF(ring, idx) = ring + buf_ofs + idx * nr_buf_size
      assert.equal(ring + bufOfs + idx * 512, views[i].buf(s).byteOffset, `NETMAP_BUF of ring ${i} slot ${s}`);
    }
  }
  assert.deepEqual(r.audit(), []);
  r.close();
});

test('the error codes the module returns have names in ERRORS, and check() raises them', () => {
  const dp = new Datapath();
  const names = Object.keys(dp.abi).filter((k) => /^E_/.test(k) && k !== 'E_OK').sort();
  assert.deepEqual(names, ['E_BROKEN', 'E_BUF_IDX', 'E_BUF_LEN', 'E_CUR', 'E_FRAGS', 'E_HEAD', 'E_INVAL', 'E_NOFIT', 'E_XREGION']);
  for (const name of names) {
    const rc = dp.abi[name];
    assert.ok(rc < 0, `${name} is negative`);
    assert.equal(ERRORS[rc]?.[0], name, `ERRORS[${rc}]`);
    assertWasmapError(() => check(rc, 'doing ' + name), name, 'doing ' + name + ': ', ERRORS[rc][1]);
  }
  assert.equal(dp.abi.E_OK, 0);
});

test('check() passes results >= 0 through and names unknown codes', () => {
  assert.equal(check(0, 'x'), 0);
  assert.equal(check(7, 'x'), 7);
  assert.equal(check(2 ** 31 - 1, 'x'), 2 ** 31 - 1);
  assertWasmapError(() => check(-42, 'frobnicate'), 'E-42', 'frobnicate: unknown datapath error');
  try { check(-1, 'txsync'); assert.fail('no throw'); } catch (e) {
    assert.ok(e instanceof WasmapError && e instanceof Error);
    assert.equal(e.name, 'WasmapError');
    assert.equal(e.message, 'txsync: head is outside [old head, tail]: advance head only over slots you own');
  }
});

test('alloc: alignment and zeroed memory, also when a span is reused', () => {
  const dp = new Datapath();
  const a = dp.alloc(100);
  assert.equal(a % 64, 0, 'default alignment 64');
  const b = dp.alloc(10, 4096);
  assert.equal(b % 4096, 0);
  const c = dp.alloc(1, PAGE);
  assert.equal(c % PAGE, 0);
  assert.ok(a + 128 <= b && b + 64 <= c, 'spans do not overlap');
  dp.u8.fill(0xaa, a, a + 128);
  dp.release(a, 100);
  const a2 = dp.alloc(100);
  assert.equal(a2, a, 'a released span is reused');
  assert.ok(dp.u8.subarray(a2, a2 + 128).every((x) => x === 0), 'and handed out zeroed');
  // the gaps that alignment left (between a and b, b and c) are used first, lowest first
  assert.equal(dp.alloc(64), a + 128);
  assert.equal(dp.alloc(b - a - 192), a + 192, 'the rest of the gap below b');
  assert.equal(dp.alloc(64), b + 64, 'then the gap below c');
  assert.ok(dp.u8.subarray(b + 64, b + 128).every((x) => x === 0));
});

test('allocated counts live bytes in 64-byte units and returns to its start value', () => {
  const dp = new Datapath();
  const start = dp.allocated;
  assert.equal(start, 0);
  const spans: [number, number][] = [];
  for (const [size, align] of [[100, 64], [5000, 4096], [1, 64], [70000, PAGE], [64, 64], [129, 64]]) {
    spans.push([dp.alloc(size, align), size]);
  }
  // the alignment gaps are free, not allocated: exactly the rounded sizes are counted
  assert.equal(dp.allocated, 128 + 5056 + 64 + 70016 + 64 + 192);
  for (const i of [2, 0, 5, 1, 4, 3]) dp.release(spans[i][0], spans[i][1]); // in a scrambled order
  assert.equal(dp.allocated, start);
  assert.equal(dp.alloc(64), spans[0][0], 'everything merged back: the next span starts at the bottom again');
});

test('memory grows when a span does not fit, and the views follow', () => {
  const dp = new Datapath();
  const before = dp.memory.buffer.byteLength;
  assert.equal(before, 64 * PAGE);
  const big = 16 << 20;
  const at = dp.alloc(big, PAGE);
  assert.ok(dp.memory.buffer.byteLength >= at + big, 'grown to hold the span');
  assert.ok(dp.u8.byteLength >= at + big, 'the byte view is re-made after grow');
  dp.u8[at + big - 1] = 0x5a;
  assert.equal(dp.dv.getUint8(at + big - 1), 0x5a);
  dp.release(at, big);
  assert.equal(dp.allocated, 0);
});

test('alloc beyond maxPages fails with ENOMEM and leaves the allocator usable', () => {
  const dp = new Datapath({ maxPages: 96 });
  assertWasmapError(() => dp.alloc(8 << 20), 'ENOMEM', 'maxPages');
  assert.equal(dp.allocated, 0);
  const a = dp.alloc(1 << 20);
  assert.equal(dp.allocated, 1 << 20);
  dp.release(a, 1 << 20);
  assert.equal(dp.allocated, 0);
});

test('regions: bad geometry is EINVAL, region_init refuses a short span (E_NOFIT), close frees everything', () => {
  const dp = new Datapath();
  for (const o of [{ slots: 1 }, { slots: 4097 }, { bufSize: 100 }, { bufSize: 32 }, { txRings: 0, rxRings: 0 }, { txRings: 65 }]) {
    assert.equal(errCode(() => new Region(dp, o)), 'EINVAL', JSON.stringify(o));
  }
  assert.equal(dp.allocated, 0, 'a refused region allocates nothing');
  const span = dp.fn.region_span_size(1, 1, 64, 2048, 0);
  assert.equal(span % PAGE, 0);
  const base = dp.alloc(span, PAGE), desc = dp.alloc(dp.fn.region_priv_size(1, 1, 64, 0));
  assert.equal(dp.fn.region_init(desc, base, span - PAGE, 1, 1, 64, 2048, 0), dp.abi.E_NOFIT);
  assert.equal(dp.fn.region_init(desc, base + 64, span, 1, 1, 64, 2048, 0), dp.abi.E_INVAL, 'base not page aligned');
  assert.equal(dp.fn.region_init(desc, base, span, 1, 1, 64, 2048, 0), 0);
  const r = new Region(dp, { slots: 256, extraBufs: 10 });
  assert.equal(r.freeBuffers, 10);
  assert.equal(r.nbufs, 2 + 2 * 256 + 10);
  assert.deepEqual(r.audit(), []);
  r.close();
  r.close(); // twice is harmless
  dp.release(base, span); dp.release(desc, dp.fn.region_priv_size(1, 1, 64, 0));
  assert.equal(dp.allocated, 0);
});

test('the module exports every function the control plane calls', () => {
  const dp = new Datapath();
  const names = ['heap_base', 'region_nbufs', 'region_span_size', 'region_priv_size', 'region_init', 'region_kring',
    'region_set_name', 'region_repair', 'pool_alloc', 'pool_free', 'pool_free_count', 'ring_space', 'sync_prologue',
    'kring_reset', 'pipe_link', 'pipe_txsync', 'rxsync', 'sw_priv_size', 'sw_init', 'sw_attach', 'sw_detach', 'sw_round',
    'sw_configure', 'sw_set_hdr', 'mac_hash', 'gen_size', 'gen_init', 'gen_tx', 'gen_rx', 'plan_size', 'traffic_run', 'pipe_run'];
  assert.deepEqual(names.filter((n) => typeof dp.fn[n] !== 'function'), []);
  assert.ok(dp.fn.heap_base() > 0 && dp.fn.heap_base() < 64 * PAGE);
});

test('pool: buffers come off the free stack, reserved and foreign indices are refused', () => {
  const dp = new Datapath();
  const r = new Region(dp, { slots: 4, extraBufs: 3 });
  const got = [dp.fn.pool_alloc(r.desc), dp.fn.pool_alloc(r.desc), dp.fn.pool_alloc(r.desc)];
  assert.deepEqual([...got].sort((x, y) => x - y), [10, 11, 12], 'the 3 buffers after the 2 + 8 ring buffers');
  assert.equal(dp.fn.pool_alloc(r.desc), 0, 'empty pool gives 0, never a valid buffer');
  assert.equal(dp.fn.pool_free(r.desc, 0), dp.abi.E_INVAL);
  assert.equal(dp.fn.pool_free(r.desc, 1), dp.abi.E_INVAL);
  assert.equal(dp.fn.pool_free(r.desc, r.nbufs), dp.abi.E_INVAL);
  for (const b of got) assert.equal(dp.fn.pool_free(r.desc, b), 0);
  assert.equal(r.freeBuffers, 3);
  assert.deepEqual(r.audit(), []);
  r.close();
});
