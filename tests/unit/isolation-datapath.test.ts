// Issue #15, the datapath's side: what a sender (a guest with a virtio-net header, a
// passthrough guest that still maps its buffers, a forwarding function) can make the switch do.
// Every test here was written from the finding it is named after and failed before its fix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Datapath } from '../../src/datapath.js';
import { Switch, conservation, type PortStats } from '../../src/switch.js';
import { Region } from '../../src/port.js';
import { findBuildFile } from '../../src/paths.js';
import { ipFrame, UDP, TCP } from '../frames.js';

const NOW = 1_000_000;
const CANARY = 0xa5;

// ---- frames: Ethernet, `tags` VLAN tags, IPv4 (ihl) or IPv6, TCP (doff) or UDP, payload ----
interface F { tags?: number; v6?: boolean; udp?: boolean; ihl?: number; doff?: number; payload: number; dmac?: number[] }
function l2l3l4(o: F): { b: Uint8Array; l3: number; l4: number } {
  const tags = o.tags ?? 0, l3 = 14 + 4 * tags, ihl = o.ihl ?? 5;
  const ipl = o.v6 ? 40 : Math.max(ihl, 5) * 4, l4 = l3 + ipl, l4l = o.udp ? 8 : Math.max(o.doff ?? 5, 5) * 4;
  const b = new Uint8Array(l4 + l4l + o.payload);
  b.set(o.dmac ?? [2, 0, 0, 0, 0, 2]); b.set([2, 0, 0, 0, 0, 1], 6);
  for (let t = 0; t < tags; t++) b.set([t === 0 ? 0x88 : 0x81, t === 0 ? 0xa8 : 0x00, 0, 5 + t], 12 + 4 * t);
  b.set(o.v6 ? [0x86, 0xdd] : [0x08, 0x00], l3 - 2);
  if (o.v6) { b[l3] = 0x60; b[l3 + 6] = o.udp ? 17 : 6; b[l3 + 7] = 64; }
  else { b[l3] = 0x40 | ihl; b[l3 + 8] = 64; b[l3 + 9] = o.udp ? 17 : 6; b.set([10, 0, 0, 1, 10, 0, 0, 2], l3 + 12); }
  if (!o.udp) b[l4 + 12] = (o.doff ?? 5) << 4;
  for (let i = l4 + l4l; i < b.length; i++) b[i] = i & 255;
  return { b, l3, l4 };
}
function vhdr(len: number, gso: number, gsoSize: number, flags = 1): Uint8Array {
  const h = new Uint8Array(len), dv = new DataView(h.buffer);
  h[0] = flags; h[1] = gso; dv.setUint16(4, gsoSize, true);
  return h;
}
const cat = (a: Uint8Array, b: Uint8Array) => { const o = new Uint8Array(a.length + b.length); o.set(a); o.set(b, a.length); return o; };

function guard(dp: Datapath, bytes: number): { at: number; bytes: number } {
  const at = dp.alloc(bytes, 64);
  dp.u8.fill(CANARY, at, at + bytes);
  return { at, bytes };
}
function guardIntact(dp: Datapath, g: { at: number; bytes: number }): boolean {
  const s = dp.u8.subarray(g.at, g.at + g.bytes);
  for (let i = 0; i < s.length; i++) if (s[i] !== CANARY) return false;
  return true;
}
function lawOk(sw: Switch, gone: PortStats[] = []): void {
  const c = conservation(sw.stats(), gone);
  assert.ok(c.ok, `conservation: sent ${c.sent} + flood ${c.floodExtra} + seg ${c.segExtra} = received ${c.received} + drops ${c.drops}`);
}

// ---- finding 1: unbounded VLAN stack, gso_size 1: SW_VN_OUT overrun ----

test('finding 1: TSO frames with 1000 and 100 VLAN tags and gso_size 1 are refused and counted; nothing past the scratch is touched', () => {
  const dp = new Datapath();
  const sw = new Switch(dp, 'vale1');
  const after = guard(dp, 1024 * 1024); // right above the switch's private span
  const src = sw.attach('src', { slots: 64 }), plain = sw.attach('plain', { slots: 512 });
  const by1 = sw.attach('by1', { slots: 64 }), by2 = sw.attach('by2', { slots: 64 });
  sw.setHeaderLength('src', 12);
  const bystander = ipFrame({ dmac: '02:00:00:00:0b:02', smac: '02:00:00:00:0b:01', len: 200 }).slice(0, 200);
  let drops = 0n;
  for (const tags of [1000, 100]) { // 256 segments of 4055 / 455 bytes each
    const { b } = l2l3l4({ tags, payload: 256, dmac: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] });
    assert.equal(src.send([cat(vhdr(12, 1, 1), b)], (plain.index + 1) << 8), 1);
    by1.send([bystander], (by2.index + 1) << 8);
    sw.round(NOW);
    assert.ok(guardIntact(dp, after), `${tags} tags: the guard span above the switch is intact`);
    assert.deepEqual(plain.recv(), [], `${tags} tags: nothing delivered`);
    assert.equal(sw.stats().ports.find((p) => p.name === 'plain')!.dropHdr, ++drops, `${tags} tags: counted as a header drop`);
    const got = by2.recv();
    assert.equal(got.length, 1); assert.deepEqual(got[0], bystander, 'a bystander pair still forwards, intact');
  }
  // two tags (QinQ) still segment, as Linux GSO does
  const q = l2l3l4({ tags: 2, payload: 3000 });
  src.send([cat(vhdr(12, 1, 1448), q.b)], (plain.index + 1) << 8);
  sw.round(NOW);
  assert.equal(plain.recv().length, 3, 'a QinQ TSO frame: 3 segments');
  lawOk(sw);
  sw.destroy();
});

test('finding 1: vnet_convert refuses more than VN_MAX_TAGS tags; vnet_convert_into never writes past its room', () => {
  const dp = new Datapath();
  const IN = dp.alloc(70000), LENS = dp.alloc(1024 + 64);
  const OUT = dp.alloc(dp.fn.vnet_out_room(70000) + 4096);
  for (const tags of [0, 1, 2, 3, 100]) {
    const { b } = l2l3l4({ tags, payload: 256 });
    const input = cat(vhdr(12, 1, 1), b);
    dp.u8.set(input, IN);
    const n = dp.fn.vnet_convert(IN, input.length, 12, 0, OUT, LENS, 65535, 15);
    if (tags <= dp.abi.VN_MAX_TAGS) assert.equal(n, 256, `${tags} tags: 256 segments`);
    else assert.ok(n < 0, `${tags} tags: refused (${n})`);
  }
  // the room is honoured: a conversion needing more than `room` bytes stops before writing past it
  const { b } = l2l3l4({ payload: 2000 });
  const input = cat(vhdr(12, 1, 100), b);
  dp.u8.set(input, IN);
  const room = 1000;
  dp.u8.fill(CANARY, OUT + room, OUT + room + 4096);
  assert.equal(dp.fn.vnet_convert_into(IN, input.length, 12, 0, OUT, room, LENS, 65535, 15), -3, 'E_VN_SIZE');
  assert.ok(dp.u8.subarray(OUT + room, OUT + room + 4096).every((x) => x === CANARY), 'nothing written past the room');
});

// ---- finding 11: IHL < 5 ----

test('finding 11: an IPv4 TSO frame with IHL 0..4 is refused, never segmented with IP fields over TCP', () => {
  const dp = new Datapath();
  const IN = dp.alloc(70000), LENS = dp.alloc(1024 + 64), OUT = dp.alloc(dp.fn.vnet_out_room(70000));
  for (const ihl of [0, 1, 4]) {
    const { b } = l2l3l4({ ihl, payload: 3000 });
    b[14] = 0x40 | ihl;
    b[14 + 4 * ihl + 12] = 0x50; // where a parser trusting IHL looks for the TCP data offset: 5
    const input = cat(vhdr(12, 1, 1448), b);
    dp.u8.set(input, IN);
    assert.ok(dp.fn.vnet_convert(IN, input.length, 12, 0, OUT, LENS, 65535, 15) < 0, `IHL ${ihl} refused`);
  }
  // through a switch: counted as a header drop at the receiver
  const sw = new Switch(dp, 'vale2');
  const src = sw.attach('src', { slots: 64 }), dst = sw.attach('dst', { slots: 64 });
  sw.setHeaderLength('src', 12);
  const { b } = l2l3l4({ ihl: 0, payload: 3000 });
  b[14] = 0x40; b[26] = 0x50;
  src.send([cat(vhdr(12, 1, 1448), b)], (dst.index + 1) << 8);
  sw.round(NOW);
  assert.deepEqual(dst.recv(), []);
  assert.equal(sw.stats().ports.find((p) => p.name === 'dst')!.dropHdr, 1n);
  lawOk(sw);
  sw.destroy();
});

// ---- finding 6: decide on one set of bytes, deliver another ----

const example = (name: string) => { const p = findBuildFile(`examples/${name}.wasm`); assert.ok(p, `build/examples/${name}.wasm missing`); return new Uint8Array(readFileSync(p)); };

/** Wrap the switch's function so that `after` runs once the function has decided a batch. */
function afterDecision(dp: Datapath, sw: Switch, after: () => void): void {
  const orig = dp.fnHooks.get(sw.sw)!;
  assert.ok(orig, 'a function is active');
  dp.fnHooks.set(sw.sw, (n, nports, now) => { const rc = orig(n, nports, now); after(); return rc; });
}

test('finding 6: a sender rewriting its buffer between the decision and the copy delivers the bytes decided on (ACL allows UDP 53 only)', () => {
  const dp = new Datapath();
  const sw = new Switch(dp, 'vale3');
  const a = sw.attach('a', { slots: 64 }), b = sw.attach('b', { slots: 64 });
  sw.setLookup(example('acl'), { config: { rules: [{ dst: '10.1.0.0/16', proto: 'udp', dport: 53, action: 'allow' }], default: 'deny', forward: { 0: 1, 1: 0 } } });
  for (const len of [60, 90, 300]) { // all of it seen by the function, or its first 96 bytes
    const f = ipFrame({ dst: '10.1.2.3', dport: 53, proto: UDP, len }).slice(0, len);
    const slot = a.tx.head;
    assert.equal(a.send([f]), 1);
    const live = a.tx.buf(slot); // what a passthrough guest still maps
    afterDecision(dp, sw, () => { live[36] = 0; live[37] = 22; }); // UDP dport 53 -> 22
    sw.round(NOW);
    const got = b.recv();
    assert.equal(got.length, 1, `${len} bytes: the allowed frame is delivered`);
    assert.equal((got[0][36] << 8) | got[0][37], 53, `${len} bytes: delivered with the port the ACL allowed, not the rewritten 22`);
    assert.deepEqual(got[0], f);
  }
  lawOk(sw);
  sw.destroy();
});

test('finding 6: a function that edits its record without REWRITE changes nothing delivered', () => {
  const dp = new Datapath();
  const sw = new Switch(dp, 'vale4');
  const a = sw.attach('a', { slots: 64 }), b = sw.attach('b', { slots: 64 });
  sw.setLookup(example('forward-other'));
  const f = ipFrame({ dst: '10.1.2.3', dport: 53, proto: UDP, len: 120 }).slice(0, 120);
  a.send([f]);
  afterDecision(dp, sw, () => { const rec = dp.u32(sw.sw + dp.abi.SW_FN_REC); dp.u8.fill(0xee, rec + dp.abi.FN_HDR, rec + dp.abi.FN_HDR + 96); });
  sw.round(NOW);
  assert.deepEqual(b.recv(), [f]);
  lawOk(sw);
  sw.destroy();
});

test('finding 6: the offload check and the delivery use one copy of the vnet header (a sender that turns on TSO after the decision)', () => {
  const dp = new Datapath();
  const sw = new Switch(dp, 'vale5');
  const a = sw.attach('a', { slots: 64 }), b = sw.attach('b', { slots: 512 });
  sw.setHeaderLength('a', 12); sw.setHeaderLength('b', 12); sw.setAccept('b', ['csum']);
  sw.setLookup(example('forward-other'));
  const { b: body } = l2l3l4({ payload: 200 });
  const f = cat(vhdr(12, 0, 0, 0), body); // no offload at all
  const slot = a.tx.head;
  a.send([f]);
  const live = a.tx.buf(slot);
  afterDecision(dp, sw, () => { live[0] = 1; live[1] = 1; live[4] = 1; live[5] = 0; }); // now TSO, gso_size 1
  sw.round(NOW);
  const got = b.recv();
  assert.equal(got.length, 1, 'one frame, as decided (not 200 segments of a header nobody checked)');
  assert.deepEqual(got[0].subarray(0, 10), f.subarray(0, 10));
  lawOk(sw);
  sw.destroy();
});

// ---- also seen: P_GEN in 16 bits ----

test('learned entries do not survive their port: 32 767 attach/detach cycles wrap no generation into a match', () => {
  const dp = new Datapath();
  const sw = new Switch(dp, 'vale6');
  const reg = new Region(dp, { slots: 8 });
  const x = sw.attach('x', { region: reg }); // index 0
  const b = sw.attach('b', { slots: 8 }), d = sw.attach('d', { slots: 8 });
  assert.equal(x.index, 0);
  const mac = [2, 0, 0, 0, 0, 0x77];
  const fromX = ipFrame({ smac: '02:00:00:00:00:77', dmac: 'ff:ff:ff:ff:ff:ff' }).slice(0, 60);
  x.send([fromX]);
  sw.round(NOW);
  b.recv(); d.recv();
  const gone = [sw.detach('x')];
  for (let i = 0; i < 32767; i++) { sw.attach('x', { region: reg }); sw.detach('x'); }
  const c = sw.attach('c', { region: reg }); // index 0 again, generation 1 + 65536
  assert.equal(c.index, 0);
  const toMac = ipFrame({ dmac: mac.map((v) => v.toString(16).padStart(2, '0')).join(':'), smac: '02:00:00:00:00:0b' }).slice(0, 60);
  b.send([toMac]);
  sw.round(NOW);
  assert.equal(d.recv().length, 1, 'the station is unknown again: flooded (d gets it too), not unicast to the new port');
  assert.equal(c.recv().length, 1);
  lawOk(sw, gone);
  sw.destroy();
});

// ---- also seen: 65 536-byte buffers and u16 slot lengths ----

test('a 65 536-byte buffer never turns a full length into 0 (header conversion into such a port)', () => {
  const dp = new Datapath();
  const sw = new Switch(dp, 'vale7');
  const a = sw.attach('a', { slots: 8, bufSize: 65536 }), b = sw.attach('b', { slots: 8, bufSize: 65536 });
  sw.setHeaderLength('b', 12);
  const f = new Uint8Array(65530);
  for (let i = 0; i < f.length; i++) f[i] = (i * 7) & 255;
  f.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5]);
  assert.equal(a.send([f], (b.index + 1) << 8), 1);
  sw.round(NOW);
  const got = b.recv();
  assert.equal(got.length, 1);
  assert.equal(got[0].length, 12 + f.length, 'the whole frame, with its header');
  assert.deepEqual(got[0].subarray(12), f);
  lawOk(sw);
  sw.destroy();
});

// ---- also seen: tpk_pull shortening frames longer than a buffer ----

// A TPACKET_V2 rx ring frame as the kernel fills it with PACKET_VNET_HDR: the 10-byte
// virtio_net_hdr just before the MAC header at tp_mac.
const MAC = 76;
function tpkFrame(dp: Datapath, f: number, frame: Uint8Array, o: { wire?: number; snap?: number; vh?: number[] } = {}): void {
  dp.setU32(f, 1); dp.setU32(f + 4, o.wire ?? frame.length); dp.setU32(f + 8, o.snap ?? frame.length); dp.setU16(f + 12, MAC);
  dp.u8.fill(0, f + MAC - 10, f + MAC); if (o.vh) dp.u8.set(o.vh, f + MAC - 10);
  dp.u8.set(frame.subarray(0, o.snap ?? frame.length), f + MAC);
}
/** The frames in slots [from, to) of a ring, MOREFRAG chains joined. */
function chains(r: ReturnType<Region['ring']>, from: number, to: number): Uint8Array[] {
  const out: Uint8Array[] = []; let cur: number[] = [];
  for (let i = from; i !== to; i = r.next(i)) {
    cur.push(...r.buf(i).subarray(0, r.len(i)));
    if (!(r.flags(i) & 0x20)) { out.push(Uint8Array.from(cur)); cur = []; }
  }
  return out;
}
const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 255);

test('tpk_pull chains a frame longer than a buffer, drops (and counts) one truncated by the kernel, never shortens one', () => {
  const dp = new Datapath();
  const reg = new Region(dp, { slots: 8, bufSize: 2048 });
  const k = reg.kring('tx');
  const FS = 8192, NF = 4, ring = dp.alloc(FS * NF, 4096), st = dp.alloc(dp.abi.TPK_SIZE);
  const big = pattern(3000, 1), small = pattern(100, 2), cut = pattern(1500, 3), last = pattern(60, 4);
  tpkFrame(dp, ring, big);
  tpkFrame(dp, ring + FS, small);
  tpkFrame(dp, ring + 2 * FS, cut, { snap: 1000 }); // truncated by the kernel
  tpkFrame(dp, ring + 3 * FS, last);
  const moved = dp.fn.tpk_pull(st, ring, NF, FS, k, 100, 0, 0);
  assert.equal(moved, 3, 'the whole frames move');
  assert.equal(dp.u64(st + 16), 1n, 'the truncated one is counted');
  for (let i = 0; i < NF; i++) assert.equal(dp.u32(ring + i * FS), 0, `ring frame ${i} handed back to the kernel`);
  const tx = reg.ring('tx');
  assert.equal(tx.head, 4, 'the 3000-byte frame took two slots');
  assert.deepEqual(chains(tx, 0, 4), [big, small, last]);
});

test('tpk_pull with the vnet header: a 12-byte port gets [10-byte kernel header][num_buffers 0][frame]; a port with none gets completed checksums and segmented GSO frames', () => {
  const dp = new Datapath();
  const FS = 69632, NF = 2, ring = dp.alloc(FS * NF, 4096);
  // a TCP frame with a partial checksum (the pseudo-header sum in the field, NEEDS_CSUM)
  const tcpLen = 14 + 20 + 20 + 3000;
  const f = ipFrame({ proto: TCP, len: tcpLen });
  const seed = f.slice(); seed[34 + 16] = 0x12; seed[34 + 17] = 0x34;
  const vhCsum = [1, 0, 0, 0, 0, 0, 34, 0, 16, 0]; // NEEDS_CSUM, csum_start 34, csum_offset 16
  // 12-byte port: passed through (the header's bytes kept, two zero bytes of num_buffers)
  {
    const reg = new Region(dp, { slots: 8, bufSize: 2048 }), st = dp.alloc(dp.abi.TPK_SIZE);
    tpkFrame(dp, ring, seed, { vh: vhCsum });
    assert.equal(dp.fn.tpk_pull(st, ring, NF, FS, reg.kring('tx'), 100, 12, 0), 1);
    const [got] = chains(reg.ring('tx'), 0, reg.ring('tx').head);
    assert.deepEqual([...got.subarray(0, 12)], [...vhCsum, 0, 0]);
    assert.deepEqual(got.subarray(12), seed);
  }
  // no header: the checksum is completed (the frame is longer than a buffer: a chain)
  {
    const reg = new Region(dp, { slots: 8, bufSize: 2048 }), st = dp.alloc(dp.abi.TPK_SIZE);
    const scratch = dp.alloc(dp.fn.tpk_scratch_size(FS), 64);
    const part = f.slice(); // pseudo-header sum folded into the field, as the kernel leaves it
    let ps = 6 + (tcpLen - 34);
    for (let i = 26; i < 34; i += 2) ps += (part[i] << 8) | part[i + 1];
    while (ps > 0xffff) ps = (ps & 0xffff) + (ps >>> 16);
    part[50] = ps >>> 8; part[51] = ps & 255;
    tpkFrame(dp, ring, part, { vh: vhCsum });
    assert.equal(dp.fn.tpk_pull(st, ring, NF, FS, reg.kring('tx'), 100, 0, scratch), 1);
    const [got] = chains(reg.ring('tx'), 0, reg.ring('tx').head);
    assert.equal(got.length, tcpLen, 'plain: no header');
    // a correct TCP checksum sums (with the pseudo header) to 0xffff
    let sum = 6 + (tcpLen - 34);
    for (let i = 26; i < 34; i += 2) sum += (got[i] << 8) | got[i + 1];
    for (let i = 34; i < got.length; i += 2) sum += (got[i] << 8) | (got[i + 1] ?? 0);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    assert.equal(sum, 0xffff, 'the checksum was completed');
    // and a TSO frame (GSO_TCPV4, gso_size 1000) becomes three segments
    const tso = ipFrame({ proto: TCP, len: tcpLen });
    tpkFrame(dp, ring + FS, tso, { vh: [1, 1, 54, 0, 1000 & 255, 1000 >> 8, 34, 0, 16, 0] });
    const reg2 = new Region(dp, { slots: 8, bufSize: 2048 }), st2 = dp.alloc(dp.abi.TPK_SIZE);
    dp.setU32(st2, 1); // the cursor at ring frame 1
    assert.equal(dp.fn.tpk_pull(st2, ring, NF, FS, reg2.kring('tx'), 100, 0, scratch), 1, 'one frame taken from the kernel');
    const segs = chains(reg2.ring('tx'), 0, reg2.ring('tx').head);
    assert.deepEqual(segs.map((x) => x.length), [1054, 1054, 1054]);
  }
  // a header the converter refuses (an unknown flag): dropped and counted, never forwarded
  {
    const reg = new Region(dp, { slots: 8, bufSize: 2048 }), st = dp.alloc(dp.abi.TPK_SIZE);
    const scratch = dp.alloc(dp.fn.tpk_scratch_size(FS), 64);
    tpkFrame(dp, ring, f, { vh: [0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0] });
    assert.equal(dp.fn.tpk_pull(st, ring, NF, FS, reg.kring('tx'), 100, 0, scratch), 0);
    assert.equal(dp.u64(st + 16), 1n);
    assert.equal(reg.ring('tx').head, 0);
  }
});

test('tpk_push writes the socket\'s 10-byte header: a 12-byte port\'s cut to 10, a zero one for a port with none; refuses a header the kernel would refuse', () => {
  const dp = new Datapath();
  const FS = 69632, NF = 4, ring = dp.alloc(FS * NF, 4096);
  const frame = pattern(3000, 9);
  const put = (reg: Region, frames: Uint8Array[]) => { for (let i = 0; i < NF; i++) dp.setU32(ring + i * FS, 0); const r = reg.ring('rx'); r.head = 0; r.tail = r.numSlots - 1; r.send(frames); r.tail = r.head; r.head = 0; r.cur = 0; };
  const data = (i: number) => dp.u8.slice(ring + i * FS + 32, ring + i * FS + 32 + dp.u32(ring + i * FS + 4));
  {
    const reg = new Region(dp, { slots: 8, bufSize: 2048 }), st = dp.alloc(dp.abi.TPK_SIZE);
    const vh = [1, 0, 0, 0, 0, 0, 34, 0, 16, 0, 0xee, 0xee];
    put(reg, [Uint8Array.from([...vh, ...frame])]);
    assert.equal(dp.fn.tpk_push(st, reg.kring('rx'), ring, NF, FS, 12, 0), 1);
    assert.equal(dp.u32(ring), 1, 'SEND_REQUEST');
    assert.deepEqual(data(0), Uint8Array.from([...vh.slice(0, 10), ...frame]), 'num_buffers left out');
    assert.equal(dp.fn.tpk_unsent(st, ring, NF, FS), 1, 'the kernel has not taken it yet');
    dp.setU32(ring, 0);
    assert.equal(dp.fn.tpk_unsent(st, ring, NF, FS), 0);
  }
  {
    const reg = new Region(dp, { slots: 8, bufSize: 2048 }), st = dp.alloc(dp.abi.TPK_SIZE);
    put(reg, [frame]);
    assert.equal(dp.fn.tpk_push(st, reg.kring('rx'), ring, NF, FS, 0, 0), 1);
    assert.deepEqual(data(0), Uint8Array.from([...new Array(10).fill(0), ...frame]), 'a zero header in front');
  }
  {
    const reg = new Region(dp, { slots: 8, bufSize: 2048 }), st = dp.alloc(dp.abi.TPK_SIZE);
    const bad = [1, 0, 0, 0, 0, 0, 0xff, 0xff, 16, 0]; // checksum far past the frame
    put(reg, [Uint8Array.from([...bad, ...frame.subarray(0, 100)]), Uint8Array.from([0, 0x42, ...new Array(8).fill(0), ...frame.subarray(0, 100)])]);
    assert.equal(dp.fn.tpk_push(st, reg.kring('rx'), ring, NF, FS, 10, 0), 0, 'neither is queued');
    assert.equal(dp.u64(st + 16), 2n, 'both counted');
    assert.equal(reg.ring('rx').head, reg.ring('rx').tail, 'and released');
  }
  {
    // with a threshold it stops at the first frame that long (the caller sends it), after the smaller ones
    const reg = new Region(dp, { slots: 8, bufSize: 2048 }), st = dp.alloc(dp.abi.TPK_SIZE);
    put(reg, [frame.subarray(0, 100), frame, frame.subarray(0, 60)]);
    assert.equal(dp.fn.tpk_push(st, reg.kring('rx'), ring, NF, FS, 0, 2048), 1);
    assert.equal(dp.fn.tpk_big(st), 1);
    assert.equal(reg.ring('rx').head, 1, 'the big frame stays at head');
  }
});
