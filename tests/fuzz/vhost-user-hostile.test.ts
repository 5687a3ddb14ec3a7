// Hostile vhost-user front-ends (issue #15): a fake QEMU (tests/integration/vhost-frontend.ts)
// that writes whatever it likes into its virtqueues and its socket while the switch runs —
// descriptors outside the memory table, overlapping, looping, chains too long, writable TX
// buffers, indirect tables of any size, random lengths, random virtio-net offload headers and
// VLAN stacks of 0..200 tags, memory tables replaced while the queues run, its RAM memfd
// truncated under the switch, random protocol messages with random fd counts, disconnects.
//
// After every operation: canary spans (allocated with dp.alloc right before and after the port's
// spans and around every mapping of guest RAM) still hold their pattern; the bystander pair
// p1 → p2 delivers every frame intact; the other ports' kring geometry is unchanged;
// conservation holds; the runner answers `ping`. After every session: the switch's fds,
// sockets, allocated bytes, mapped guest RAM and SIGBUS fences are back to where they were.
//
// WASMAP_FUZZ_SCALE (default 1: ~10 s) multiplies the operations; WASMAP_FUZZ_SEED picks the run
// (random otherwise, printed on failure). One line on stdout at the end:
//   fuzz vhost-user-hostile: seed=S ops=N longest_round_ms=X sessions=… faults=… …
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runner } from '../../src/runner.js';
import { loadHost, hostMissingReason, type NativeHost } from '../../src/host.js';
import { conservation } from '../../src/switch.js';
import type { VhostUserPort } from '../../src/backends/vhost-user.js';
import { frame, station, macBytes, BCAST } from '../unit/helpers.js';
import {
  message, FakeQemu, REQ, FLAG, FEAT, GUEST_FEATURES, LAYOUT, QSIZE, NET_HDR, HOLE, MiB, KiB,
  memTable, vringAddr, vringState, type MemfdKind, type MemRegion,
} from '../integration/vhost-frontend.js';

const required = process.env.WASMAP_REQUIRE_NET === '1';
const loaded = loadHost();
const why = loaded ? '' : `native host unavailable: ${hostMissingReason()}`;
const skip = why && !required ? why : false;
const host = loaded as NativeHost;

const SCALE = Math.max(0.01, Number(process.env.WASMAP_FUZZ_SCALE ?? 1));
const SEED = process.env.WASMAP_FUZZ_SEED ? Number(process.env.WASMAP_FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const OPS = Math.max(20, Math.round(400 * SCALE));

function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s; };
  return (n: number) => next() % Math.max(1, n);
}

const SW = 'valehz';
const P1 = station(0x301), P2 = station(0x302);
const CANARY = 0xa5;
const CANARY_SPAN = 65536;
const MEMFD_LEN = 64 * KiB + 4 * MiB + 64 * KiB; // GuestRam: guard, 4 MiB, guard

let dir = '';
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

// twice: guest RAM mapped whole, and seen through a window (issue #17: 64 KiB chunks, 8 slots,
// so the 4 MiB guest has 64 chunks and misses, evictions and pinned rings happen all the time)
for (const windowed of [false, true]) test(`vhost-user hostile front-ends: ${OPS} operations (seed ${SEED})${windowed ? ', guest memory through a window' : ''}`, { skip, timeout: 600_000 }, () => {
  if (why) assert.fail(`WASMAP_REQUIRE_NET=1 but ${why}`);
  const r = rng(SEED);
  dir = mkdtempSync(join(tmpdir(), `wasmap-vhz-${process.pid}-`));
  const runner = new Runner([SW]);
  const dp = runner.dp;
  const canaries: { at: number; len: number }[] = [];
  const canary = () => { const at = dp.alloc(CANARY_SPAN, 65536); dp.u8.fill(CANARY, at, at + CANARY_SPAN); canaries.push({ at, len: CANARY_SPAN }); };
  const facts = { floods: 0, ops: 0, sessions: 0, faults: 0, truncates: 0, tables: 0, chaos: 0, frames: 0, tags: 0, protocol: 0, broken: 0, bystander: 0, longest: 0, refusedFds: 0, sealed: 0, fenced: 0 };
  let g: FakeQemu | null = null;
  let damaged = false; // the guest's RAM was truncated: its guard bytes are gone with it
  try {
    // the bystanders and the hostile port, with canaries before and after the port's spans
    runner.attach(SW, 'p1');
    runner.attach(SW, 'p2');
    const s = runner.vale.switch(SW);
    const p1 = s.port('p1')!, p2 = s.port('p2')!;
    // p3's frames carry a virtio-net header as the guest's do: no conversion on the way to the
    // guest, so they take the direct receive path (written straight into the guest's buffers)
    runner.attach(SW, 'p3');
    s.setHeaderLength('p3', 12);
    const p3 = s.port('p3')!;
    const a = dp.abi;
    // #15 finding 1 (segment() and VLAN stacks, assembly/offload/vnet.ts) is fixed outside this
    // suite's files: in a tree without that fix (no VN_MAX_TAGS) a deep VLAN stack on a TSO frame
    // overruns the switch's scratch, so deep stacks go without GSO there (said in the summary)
    const segBounded = a.VN_MAX_TAGS !== undefined;
    const geometry = () => [p1.tx.kring, p1.rx.kring, p2.tx.kring, p2.rx.kring].map((k) =>
      [a.KR_RING, a.KR_NSLOTS, a.KR_BUF_BASE, a.KR_BUF_SIZE, a.KR_NBUFS].map((o) => dp.u32(k + o)).join(',')).join(' ');
    const geo0 = geometry();
    canary();
    const path = join(dir, 'vm.sock');
    runner.attach(SW, `vhost-user:${path}`, windowed ? { name: 'vm', directMax: 0, chunkShift: 16, window: 8 } : { name: 'vm' });
    canary();
    const vp = (runner as unknown as { backends: Map<string, VhostUserPort> }).backends.get(`${SW}:vm`)!;
    assert.ok(vp, 'test bug: Runner keeps its backends in backends');
    // p2 says where it is, so p1's frames go to it alone
    p2.send([frame(P1, P2, 60, 0)]); runner.step(); p1.recv();
    const base = { mem: runner.memory(), fences: host.fenceStats().fences, canaries: canaries.length, allocated: 0 };
    base.allocated = base.mem.allocated;
    let seq = 1;

    const step = () => {
      const t0 = performance.now();
      runner.step();
      const ms = performance.now() - t0;
      if (ms > facts.longest) facts.longest = ms;
    };
    const checkAll = (where: string) => {
      for (const c of canaries) {
        const v = dp.u8.subarray(c.at, c.at + c.len);
        const bad = v.findIndex((x) => x !== CANARY);
        assert.equal(bad, -1, `${where}: canary at ${c.at} damaged at +${bad}`);
      }
      assert.equal(geometry(), geo0, `${where}: the bystanders' krings changed`);
      if (g && !damaged) assert.equal(g.ram.guardDamage(), null, `${where}: guest memory outside its regions written`);
      const c = conservation(s.stats());
      assert.ok(c.ok, `${where}: conservation ${JSON.stringify(c, (_, v) => (typeof v === 'bigint' ? Number(v) : v))}`);
      const pong = runner.handle({ id: facts.ops, verb: 'ping' } as never) as { ok: boolean };
      assert.ok(pong.ok, `${where}: the runner answers`);
    };
    const bystander = () => {
      const sent = frame(P2, P1, 60 + r(1400), seq++);
      p1.send([sent]);
      step(); step();
      // p1's frames only (src p1, dst p2): a guest may replay frames p1 sent it, to anyone
      const got = p2.recv().filter((f) => Buffer.from(f.subarray(6, 12)).equals(Buffer.from(macBytes(P1))) && Buffer.from(f.subarray(0, 6)).equals(Buffer.from(macBytes(P2))));
      assert.equal(got.length, 1, `p2 got ${got.length} of p1's frames, expected 1`);
      assert.ok(Buffer.from(got[0]).equals(Buffer.from(sent)), 'p1 → p2 frame intact');
      facts.bystander++;
      p1.recv();
    };

    const endSession = () => {
      if (!g) return;
      g.close();
      g = null;
      damaged = false;
      runner.vhostService();
      step();
      assert.equal(vp.connected, false);
      // the guest RAM canaries go; the port's stay
      while (canaries.length > base.canaries) { const c = canaries.pop()!; dp.release(c.at, c.len); }
      assert.deepEqual(runner.memory(), base.mem, 'after a session: fds, sockets, allocated bytes and mapped guest RAM as before');
      assert.equal(host.fenceStats().fences, base.fences, 'after a session: no SIGBUS fence left');
    };
    const newSession = () => {
      const kinds: MemfdKind[] = ['plain', 'sealable', 'sealed'];
      const kind = kinds[r(3)];
      const feats = [GUEST_FEATURES, GUEST_FEATURES & ~FEAT.MRG_RXBUF, GUEST_FEATURES & ~FEAT.EVENT_IDX, GUEST_FEATURES & ~FEAT.INDIRECT_DESC,
        GUEST_FEATURES | FEAT.GUEST_TSO4 | FEAT.HOST_TSO4 | FEAT.GUEST_TSO6 | FEAT.HOST_TSO6][r(5)];
      g = new FakeQemu(host, path, () => runner.vhostService(), { name: `wasmap-vhz-${process.pid}`, memfd: kind, features: feats });
      canary();
      g.start();
      canary();
      facts.sessions++;
      const table = vp.events.filter((e) => /memory table:/.test(e)).pop() ?? '';
      if (/sealed against shrinking/.test(table)) facts.sealed++; else facts.fenced++;
      g.rx.addRx(64); g.rx.publish();
    };
    const alive = () => g !== null && vp.connected;

    // ---- hostile operations --------------------------------------------------------------
    const gpaChoices = (): number | bigint => {
      switch (r(9)) {
        case 0: return HOLE.gpa + r(HOLE.size);
        case 1: return 4 * MiB - r(4096);
        case 2: return 4 * MiB + r(1 << 20);
        case 3: return (1n << 64n) - BigInt(1 + r(65536));
        case 4: return LAYOUT.tx.desc + 16 * r(QSIZE);
        case 5: return LAYOUT.rx.avail + r(64);
        default: return r(4 * MiB);
      }
    };
    const lenChoices = () => [0, 1, 12, r(4096), r(70000), 0xffffffff, 65548, 65549, 16, 32 * r(9), 0x80000][r(11)];
    const chaos = (q: 0 | 1) => {
      if (!g) return;
      const vq = g.queue(q), ram = g.ram, num = vq.num;
      const n = 1 + r(12);
      for (let k = 0; k < n; k++) {
        const flags = r(4) === 0 ? r(8) : (q === 0 ? 2 : 0) | (r(3) === 0 ? 1 : 0);
        vq.desc(r(num), gpaChoices(), lenChoices(), flags, r(4) === 0 ? r(65536) : r(num + 2));
      }
      if (r(4) === 0) { // an indirect table of random entries somewhere in RAM
        const at = LAYOUT.spare + 64 * r(256);
        for (let k = 0; k < 1 + r(8); k++) ram.writeDesc(at + 16 * k, gpaChoices(), lenChoices(), r(8), r(12));
        vq.desc(r(num), at, 16 * r(10), 4 | (r(4) === 0 ? 1 : 0), r(num));
      }
      const heads = 1 + r(6);
      for (let k = 0; k < heads; k++) vq.offer(r(4) === 0 ? r(65536) : r(num));
      if (r(5) === 0) ram.dv.setUint16(ram.at(vq.l.avail + 2), r(65536), true); // avail idx anywhere
      else vq.publish();
      if (r(6) === 0) ram.dv.setUint16(ram.at(vq.l.used + 4 + 8 * num), r(65536), true); // avail_event
      if (r(6) === 0) ram.dv.setUint16(ram.at(vq.l.avail + 4 + 2 * num), r(65536), true); // used_event
      if (r(8) === 0) ram.dv.setUint16(ram.at(vq.l.avail), r(65536), true); // avail flags
      facts.chaos++;
    };
    // a frame with a random virtio-net header, a VLAN stack of 0..200 tags, IPv4/IPv6/TCP/UDP headers
    const offloadFrame = (): Uint8Array => {
      // one in six: the shape of #15 finding 1 (a well-formed TSO frame, a deep VLAN stack, a tiny gso_size)
      const weapon = segBounded && r(6) === 0;
      const tags = weapon ? 60 + r(141) : r(5) === 0 ? r(201) : r(3);
      facts.tags = Math.max(facts.tags, tags);
      const payload = r(1000 - Math.min(tags * 4, 800) + 1);
      const l3 = weapon ? r(2) : r(4); // 0 IPv4, 1 IPv6, 2 junk, 3 ARP-ish
      const ipLen = l3 === 0 ? 20 + 4 * r(3) : l3 === 1 ? 40 : 0;
      const l4 = 20;
      const b = Buffer.alloc(NET_HDR + 14 + 4 * tags + ipLen + l4 + payload);
      // virtio_net_hdr_v1: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers
      b[0] = r(4); b[1] = [0, 1, 3, 4, 5, 0x81, r(256)][r(7)];
      b.writeUInt16LE(r(3) ? r(512) : r(65536), 2);
      b.writeUInt16LE(r(3) ? 1 + r(1500) : r(65536), 4);
      b.writeUInt16LE(r(3) ? 14 + 4 * tags + r(80) : r(65536), 6);
      b.writeUInt16LE(r(3) ? [16, 6, 10][r(3)] : r(65536), 8);
      const dsts = [P1, P2, BCAST, station(0x400 + r(8))];
      b.set(macBytes(dsts[r(4)]), NET_HDR); b.set(macBytes(station(0x500 + r(4))), NET_HDR + 6);
      let o = NET_HDR + 12;
      for (let k = 0; k < tags; k++) { b.writeUInt16BE(r(2) ? 0x8100 : 0x88a8, o); b.writeUInt16BE(r(4096), o + 2); o += 4; }
      b.writeUInt16BE(l3 === 0 ? 0x0800 : l3 === 1 ? 0x86dd : l3 === 2 ? r(65536) : 0x0806, o); o += 2;
      if (!segBounded && tags > 2) b[1] = 0; // see segBounded
      if (weapon) { b[0] = 1; b[1] = l3 === 0 ? 1 : 4; b.writeUInt16LE(1 + r(8), 4); b.writeUInt16LE(14 + 4 * tags, 6); b.writeUInt16LE(16, 8); }
      if (l3 === 0) { b[o] = r(6) || weapon ? 0x40 | (ipLen / 4) : 0x40 | r(16); b.writeUInt16BE(r(3) ? ipLen + l4 + payload : r(65536), o + 2); b[o + 9] = r(3) ? 6 : 17; }
      if (l3 === 1) { b[o] = 0x60; b.writeUInt16BE(r(3) ? l4 + payload : r(65536), o + 4); b[o + 6] = r(3) ? 6 : [17, 0, 43, 44, 60][r(5)]; b[o + 7] = 64; }
      o += ipLen;
      b[o + 12] = r(3) ? 0x50 : r(256); // TCP data offset
      for (let k = o + l4; k < b.length; k++) b[k] = r(256);
      return b;
    };
    const sendOffloads = () => {
      if (!g) return;
      const n = 1 + r(6);
      for (let k = 0; k < n && g.tx.freeDescs > 2; k++) { g.tx.addTx(offloadFrame(), r(3) === 0); facts.frames++; }
      g.tx.publish();
    };
    const reclaimTx = () => { try { g?.tx.reclaim(); } catch { /* the used ring names chains the driver did not offer: chaos did that */ } };
    const memTableChange = () => {
      if (!alive()) return;
      facts.tables++;
      canary();
      try {
        if (r(2)) g!.setMemTable(); // the same table again, as QEMU on hotplug
        else {
          const regions: MemRegion[] = [];
          for (let k = 0; k < 1 + r(9); k++) {
            regions.push({ gpa: BigInt(r(3) ? 65536 * r(96) : r(2 ** 31)), size: BigInt(r(3) ? 65536 * (1 + r(32)) : r(2 ** 31)),
              uva: BigInt(0x7f0000000000 + 65536 * r(4096)), mmapOffset: BigInt(r(4) ? 4096 * r(1200) : r(2 ** 30)) });
          }
          const nfds = r(4) === 0 ? r(9) : Math.min(regions.length, 8);
          g!.q.send(REQ.SET_MEM_TABLE, memTable(regions, r(6) === 0 ? r(12) : regions.length), Array.from({ length: nfds }, () => g!.ram.fd));
          runner.vhostService();
        }
      } catch { /* the back-end hung up: the session ends */ }
      canary();
    };
    const truncate = () => {
      if (!g) return;
      facts.truncates++;
      try { g.ram.truncate(r(3) ? 0 : r(MEMFD_LEN)); damaged = true; } catch (e) { assert.equal((e as NodeJS.ErrnoException).code, 'EPERM', 'only a seal refuses it'); }
    };
    const protocol = () => {
      if (!g || !g.conn) return;
      facts.protocol++;
      const known = Object.values(REQ);
      const req = r(3) ? known[r(known.length)] : r(64);
      const size = r(4) === 0 ? r(300) : [0, 8, 40, 8 + 32 * r(9)][r(4)];
      const p = Buffer.alloc(size);
      for (let k = 0; k < size; k++) p[k] = r(3) ? 0 : r(256);
      if (size >= 4 && r(2)) p.writeUInt32LE(r(3), 0); // a queue index that exists, mostly
      const nfds = r(3) === 0 ? r(9) : 0;
      const fds = Array.from({ length: nfds }, () => host.eventfdCreate());
      try {
        if (req === REQ.SET_VRING_ADDR && size >= 40 && r(2)) g.q.send(req, vringAddr(r(2), BigInt(r(2 ** 31)), BigInt(r(2 ** 31)), BigInt(r(2 ** 31))), fds);
        else if (req === REQ.SET_VRING_NUM && r(2)) g.q.send(req, vringState(r(2), [0, 1, 3, 256, 32768, 65536, r(2 ** 31)][r(7)]), fds);
        else g.q.send(req, p, fds, FLAG.VERSION | (r(2) ? FLAG.NEED_REPLY : 0) | (r(10) === 0 ? r(16) : 0));
      } catch { /* the back-end hung up */ } finally { for (const f of fds) host.closeFd(f); }
      runner.vhostService();
      while (g.conn && g.q.recv(0)) { /* replies: not our concern */ }
    };
    // requests in bulk: read back or never read (the switch must neither stall nor block on them)
    const flood = () => {
      if (!alive()) return;
      facts.floods++;
      const read = r(2) === 0;
      const ask = Buffer.concat(Array.from({ length: 50 + r(200) }, () => r(2) ? message(REQ.GET_FEATURES) : message(REQ.SET_VRING_ENABLE, vringState(r(2), 1))));
      for (let k = 0; k < 1 + r(40) && vp.connected; k++) {
        try { g!.q.sendRaw(ask); } catch { break; }
        step(); runner.vhostService();
        if (read) while (g!.conn && g!.q.recv(0)) { /* replies */ }
      }
    };
    const restartQueues = () => {
      if (!alive()) return;
      try { g!.rx.reset(); g!.tx.reset(); g!.startQueue(0); g!.startQueue(1); g!.rx.addRx(64); g!.rx.publish(); } catch { /* a refused table leaves no rings: the session may be over */ }
    };
    const rxTraffic = () => {
      if (!alive()) return;
      const frames: Uint8Array[] = [];
      for (let k = 0; k < 1 + r(6); k++) frames.push(frame(station(0x500 + r(4)), P1, 60 + r(r(4) === 0 ? 9000 : 1400), 0));
      if (r(2)) p1.send(frames);
      else { // with a header, random but for num_buffers' place (the switch writes it)
        p3.send(frames.map((f) => { const b = new Uint8Array(12 + f.length); for (let k = 0; k < 10; k++) b[k] = r(3) ? 0 : r(256); b.set(f, 12); return b; }));
        p3.recv();
      }
      if (r(3) === 0 && g!.rx.freeDescs > 0) { try { g!.rx.receive(); } catch { /* chaos wrote the used ring */ } }
      if (g!.rx.freeDescs > 8 && r(2)) { try { g!.rx.addRx(Math.min(g!.rx.freeDescs, r(16)), [64, 512, 2048][r(3)]); g!.rx.publish(); } catch { /* no free */ } }
    };

    newSession();
    for (facts.ops = 0; facts.ops < OPS; facts.ops++) {
      if (!g) newSession();
      const op = r(100);
      if (op < 30) sendOffloads();
      else if (op < 50) chaos(1);
      else if (op < 58) chaos(0);
      else if (op < 70) rxTraffic();
      else if (op < 78) protocol();
      else if (op < 83) memTableChange();
      else if (op < 86) truncate();
      else if (op < 92) restartQueues();
      else if (op < 95) reclaimTx();
      else if (op < 96) flood();
      else { endSession(); }
      step(); step();
      if (g && vp.refused.memoryFaults > facts.faults) facts.faults = vp.refused.memoryFaults;
      facts.refusedFds = vp.refused.fds;
      if (vp.down && /broken/.test(vp.down)) facts.broken++;
      reclaimTx();
      checkAll(`op ${facts.ops}`);
      bystander();
      // a session that broke, hung up or lost its memory is replaced now and then
      if (g && (!vp.connected || damaged) && r(2) === 0) endSession();
      else if (g && vp.down && r(4) === 0) restartQueues();
    }
    endSession();
    checkAll('the end');
    const st = s.stats();
    const vmStats = st.ports.find((p) => p.name === 'vm')!;
    console.log(`fuzz vhost-user-hostile${windowed ? ` (window: ${JSON.stringify(vp.winStats)})` : ''}: seed=${SEED} ops=${facts.ops} longest_round_ms=${facts.longest.toFixed(1)} guest_tx_frames=${vmStats.txPackets} seg_extra=${st.segExtra} sessions=${facts.sessions} sealed=${facts.sealed} fenced=${facts.fenced} truncates=${facts.truncates} memory_faults=${facts.faults} tables=${facts.tables} chaos=${facts.chaos} offload_frames=${facts.frames} max_vlan_tags=${facts.tags}${segBounded ? '' : ' (no GSO on stacks > 2: segment() bound not in this tree)'} protocol=${facts.protocol} floods=${facts.floods} messages=${vp.messages} refused_fds=${facts.refusedFds} bystander_frames=${facts.bystander} rx_direct=${vp.queueStats().rx.direct ?? 0}`);
  } catch (e) {
    const err = e as Error;
    err.message = `[seed ${SEED}, op ${facts.ops}; rerun with WASMAP_FUZZ_SEED=${SEED}] ${err.message}`;
    throw err;
  } finally {
    try { (g as FakeQemu | null)?.close(); } catch { /* best effort */ }
    runner.close();
  }
});
