// Header conversion and software TSO/USO, checked against an independent JavaScript
// implementation of the Internet checksum and of what each segment must look like.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Datapath } from '../../src/datapath.js';

const dp = new Datapath();
const IN = dp.alloc(70000, 64), OUT = dp.alloc(dp.fn.vnet_out_room(70000), 64), LENS = dp.alloc(1024, 64);

function csum(b: Uint8Array, init = 0): number {
  let s = init;
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i] << 8) | b[i + 1];
  if (b.length & 1) s += b[b.length - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
const be16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const be32 = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

interface Frame { bytes: Uint8Array; l3: number; l4: number; hlen: number }
/** Ethernet [+VLAN] + IPv4 (with options) or IPv6 + TCP (with options) or UDP, payload i&255. */
function frame(o: { v6?: boolean; udp?: boolean; vlan?: boolean; ipopt?: number; tcpopt?: number; payload: number; seq?: number; flags?: number; id?: number }): Frame {
  const l3 = o.vlan ? 18 : 14, ipl = o.v6 ? 40 : 20 + (o.ipopt ?? 0), l4 = l3 + ipl;
  const l4l = o.udp ? 8 : 20 + (o.tcpopt ?? 0), hlen = l4 + l4l, b = new Uint8Array(hlen + o.payload);
  b.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
  if (o.vlan) b.set([0x81, 0x00, 0x00, 0x05], 12);
  b.set(o.v6 ? [0x86, 0xdd] : [0x08, 0x00], l3 - 2);
  if (o.v6) {
    b[l3] = 0x60; b[l3 + 6] = o.udp ? 17 : 6; b[l3 + 7] = 64;
    for (let i = 0; i < 16; i++) { b[l3 + 8 + i] = 0x20 + i; b[l3 + 24 + i] = 0x40 + i; }
  } else {
    b[l3] = 0x40 | (ipl / 4); b[l3 + 4] = (o.id ?? 0x1234) >> 8; b[l3 + 5] = (o.id ?? 0x1234) & 255;
    b[l3 + 8] = 64; b[l3 + 9] = o.udp ? 17 : 6; b.set([10, 0, 0, 1, 10, 0, 0, 2], l3 + 12);
    for (let i = 20; i < ipl; i++) b[l3 + i] = 1; // NOP options
  }
  b[l4] = 0x30; b[l4 + 1] = 0x39; b[l4 + 2] = 0x14; b[l4 + 3] = 0x51;
  if (!o.udp) {
    const s = o.seq ?? 1000; b.set([s >>> 24, (s >>> 16) & 255, (s >>> 8) & 255, s & 255], l4 + 4);
    b[l4 + 12] = (l4l / 4) << 4; b[l4 + 13] = o.flags ?? 0x18; b[l4 + 14] = 0xff;
    for (let i = 20; i < l4l; i++) b[l4 + i] = 1;
  }
  for (let i = 0; i < o.payload; i++) b[hlen + i] = i & 255;
  return { bytes: b, l3, l4, hlen };
}
function vhdr(len: number, f: { flags?: number; gso?: number; gsoSize?: number; start?: number; offset?: number }): Uint8Array {
  const h = new Uint8Array(len);
  h[0] = f.flags ?? 0; h[1] = f.gso ?? 0;
  const dv = new DataView(h.buffer);
  dv.setUint16(4, f.gsoSize ?? 0, true); dv.setUint16(6, f.start ?? 0, true); dv.setUint16(8, f.offset ?? 0, true);
  return h;
}
function convert(input: Uint8Array, shdr: number, dhdr: number, maxFrame = 65535, accept = 15): Uint8Array[] | number {
  dp.u8.set(input, IN);
  const n = dp.fn.vnet_convert(IN, input.length, shdr, dhdr, OUT, LENS, maxFrame, accept);
  if (n < 0) return n;
  const out: Uint8Array[] = [];
  let at = OUT;
  for (let i = 0; i < n; i++) { const l = dp.u32(LENS + 4 * i); out.push(dp.u8.slice(at, at + l)); at += l; }
  return out;
}
const cat = (...a: Uint8Array[]) => { const o = new Uint8Array(a.reduce((n, x) => n + x.length, 0)); let i = 0; for (const x of a) { o.set(x, i); i += x.length; } return o; };
function pseudo(seg: Uint8Array, f: Frame, v6: boolean, proto: number): number {
  const l4len = seg.length - f.l4;
  return v6 ? csum(seg.subarray(f.l3 + 8, f.l3 + 40), proto + l4len) : csum(seg.subarray(f.l3 + 12, f.l3 + 20), proto + l4len);
}

for (const c of [
  { name: 'TSO IPv4, last segment short', v6: false, payload: 5000, mss: 1448 },
  { name: 'TSO IPv4 with IP and TCP options', v6: false, payload: 4000, mss: 1000, ipopt: 8, tcpopt: 12 },
  { name: 'TSO IPv4 behind a VLAN tag', v6: false, payload: 3000, mss: 1400, vlan: true },
  { name: 'TSO IPv6', v6: true, payload: 6000, mss: 1428 },
  { name: 'TSO IPv4, payload an exact multiple', v6: false, payload: 2896, mss: 1448 },
  { name: 'TSO 64 KiB', v6: false, payload: 65000, mss: 1448 },
]) {
  test(`${c.name}: segments, headers and checksums`, () => {
    const f = frame({ v6: c.v6, payload: c.payload, ipopt: c.ipopt, tcpopt: c.tcpopt, vlan: c.vlan, seq: 0xfffff000, flags: 0x19 /* FIN PSH ACK */ });
    const out = convert(cat(vhdr(12, { flags: 1, gso: c.v6 ? 4 : 1, gsoSize: c.mss, start: f.l4, offset: 16 }), f.bytes), 12, 0);
    assert.ok(Array.isArray(out));
    const segs = out as Uint8Array[];
    assert.equal(segs.length, Math.ceil(c.payload / c.mss));
    let payload = new Uint8Array(0);
    segs.forEach((s, i) => {
      const last = i === segs.length - 1, plen = last ? c.payload - i * c.mss : c.mss;
      assert.equal(s.length, f.hlen + plen, `segment ${i} length`);
      assert.deepEqual(s.subarray(0, f.l3), f.bytes.subarray(0, f.l3), 'L2 unchanged');
      if (c.v6) assert.equal(be16(s, f.l3 + 4), s.length - f.l4, 'IPv6 payload length');
      else {
        assert.equal(be16(s, f.l3 + 2), s.length - f.l3, 'IPv4 total length');
        assert.equal(be16(s, f.l3 + 4), (0x1234 + i) & 0xffff, 'IPv4 id increments');
        assert.equal(csum(s.subarray(f.l3, f.l4)), 0xffff, 'IPv4 header checksum');
      }
      assert.equal(be32(s, f.l4 + 4), (0xfffff000 + i * c.mss) >>> 0, 'TCP sequence (wraps)');
      assert.equal(s[f.l4 + 13], last ? 0x19 : 0x10, 'FIN/PSH only on the last segment');
      assert.equal(csum(s.subarray(f.l4), pseudo(s, f, c.v6, 6)), 0xffff, `TCP checksum of segment ${i}`);
      payload = cat(payload, s.subarray(f.hlen));
    });
    assert.deepEqual(payload, f.bytes.subarray(f.hlen), 'payload reassembles');
  });
}

test('USO: UDP datagrams with their own lengths and checksums', () => {
  const f = frame({ udp: true, payload: 3000 });
  const segs = convert(cat(vhdr(10, { flags: 1, gso: 5, gsoSize: 1200, start: f.l4, offset: 6 }), f.bytes), 10, 0) as Uint8Array[];
  assert.equal(segs.length, 3);
  for (const s of segs) {
    assert.equal(be16(s, f.l4 + 4), s.length - f.l4);
    assert.equal(csum(s.subarray(f.l4), pseudo(s, f, false, 17)), 0xffff);
  }
});

test('checksum completion (NEEDS_CSUM) from a pseudo-header partial sum', () => {
  const f = frame({ payload: 333 });
  const b = f.bytes.slice();
  // what a sender with checksum offload leaves: the (uncomplemented) pseudo-header sum
  const ps = csum(b.subarray(f.l3 + 12, f.l3 + 20), 6 + (b.length - f.l4));
  b[f.l4 + 16] = ps >> 8; b[f.l4 + 17] = ps & 255;
  const out = convert(cat(vhdr(12, { flags: 1, start: f.l4, offset: 16 }), b), 12, 0) as Uint8Array[];
  assert.equal(out.length, 1);
  assert.equal(out[0].length, b.length, 'header stripped');
  assert.equal(csum(out[0].subarray(f.l4), pseudo(out[0], f, false, 6)), 0xffff);
});

test('headers: zero one added (0 -> 12), converted (12 -> 10, 10 -> 12), stripped as is', () => {
  const f = frame({ payload: 100 });
  let out = convert(f.bytes, 0, 12) as Uint8Array[];
  assert.deepEqual(out[0], cat(new Uint8Array(12), f.bytes));
  const h = vhdr(12, { flags: 1, gso: 1, gsoSize: 1448, start: 34, offset: 16 });
  out = convert(cat(h, f.bytes), 12, 10) as Uint8Array[];
  assert.deepEqual(out[0], cat(h.subarray(0, 10), f.bytes));
  out = convert(cat(h.subarray(0, 10), f.bytes), 10, 12) as Uint8Array[];
  assert.deepEqual(out[0].subarray(0, 10), h.subarray(0, 10));
  assert.equal(new DataView(out[0].buffer).getUint16(10, true), 1, 'num_buffers');
  out = convert(cat(vhdr(12, {}), f.bytes), 12, 0) as Uint8Array[];
  assert.deepEqual(out[0], f.bytes);
});

test('bad or unsupported headers are refused, never half-converted', () => {
  const f = frame({ payload: 3000 });
  const v6 = frame({ v6: true, payload: 3000 });
  const udp = frame({ udp: true, payload: 3000 });
  const cases: [Uint8Array, string][] = [
    [cat(vhdr(12, { flags: 4 }), f.bytes), 'unknown flag'],
    [cat(vhdr(12, { flags: 1, gso: 3, gsoSize: 1400 }), udp.bytes), 'UFO (IP fragmentation)'],
    [cat(vhdr(12, { flags: 1, gso: 9, gsoSize: 1400 }), f.bytes), 'unknown gso type'],
    [cat(vhdr(12, { flags: 1, gso: 1, gsoSize: 1400 }), v6.bytes), 'TCPv4 gso on an IPv6 frame'],
    [cat(vhdr(12, { flags: 1, gso: 1, gsoSize: 1400 }), udp.bytes), 'TCP gso on a UDP frame'],
    [cat(vhdr(12, { flags: 1, gso: 1, gsoSize: 0 }), f.bytes), 'gso_size 0'],
    [cat(vhdr(12, { flags: 1, gso: 1, gsoSize: 10 }), f.bytes), 'more than 256 segments'],
    [cat(vhdr(12, { flags: 1, start: 5000, offset: 16 }), f.bytes), 'csum_start beyond the frame'],
    [cat(vhdr(12, { flags: 1, gso: 1, gsoSize: 1400 }), f.bytes.subarray(0, 40)), 'truncated TCP header'],
  ];
  for (const [input, why] of cases) assert.ok(typeof convert(input, 12, 0) === 'number', why);
  assert.ok(typeof convert(cat(vhdr(12, { flags: 1, gso: 1, gsoSize: 1448 }), f.bytes), 12, 0, 1000) === 'number', 'segment larger than the receiver takes');
});

test('the SIMD checksum equals RFC 1071 for every length 0..600 and random bytes', () => {
  const P = dp.alloc(4096, 64);
  let seed = 12345;
  const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed >>> 24; };
  for (let len = 0; len <= 600; len++) {
    const b = new Uint8Array(len).map(rnd);
    for (const off of [0, 1, 3]) {
      dp.u8.set(b, P + off);
      assert.equal(dp.fn.csum_bytes(P + off, len), csum(b), `len ${len} at offset ${off}`);
    }
  }
});

test('a receiver with a header that does not accept TSO gets segments, each with a plain header', () => {
  const f = frame({ payload: 3000 });
  const segs = convert(cat(vhdr(12, { flags: 1, gso: 1, gsoSize: 1448, start: f.l4, offset: 16 }), f.bytes), 12, 12, 65535, 1 /* csum only */) as Uint8Array[];
  assert.equal(segs.length, 3);
  for (const s of segs) {
    assert.deepEqual(s.subarray(0, 10), new Uint8Array(10), 'no offload asked of the receiver');
    assert.equal(new DataView(s.buffer).getUint16(10, true), 1);
    const body = s.subarray(12);
    assert.equal(csum(body.subarray(f.l4), pseudo(body, f, false, 6)), 0xffff);
  }
  // and one that accepts TSO4 gets the frame as it is
  const same = convert(cat(vhdr(12, { flags: 1, gso: 1, gsoSize: 1448, start: f.l4, offset: 16 }), f.bytes), 12, 12, 65535, 2) as Uint8Array[];
  assert.equal(same.length, 1);
  assert.equal(same[0][1], 1, 'gso_type kept');
});

test('a receiver that does not accept checksum offload gets the checksum completed', () => {
  const f = frame({ payload: 200 });
  const b = f.bytes.slice();
  const ps = csum(b.subarray(f.l3 + 12, f.l3 + 20), 6 + (b.length - f.l4));
  b[f.l4 + 16] = ps >> 8; b[f.l4 + 17] = ps & 255;
  const out = convert(cat(vhdr(10, { flags: 1, start: f.l4, offset: 16 }), b), 10, 10, 65535, 0) as Uint8Array[];
  assert.equal(out.length, 1);
  assert.equal(out[0][0], 0, 'NEEDS_CSUM cleared');
  const body = out[0].subarray(10);
  assert.equal(csum(body.subarray(f.l4), pseudo(body, f, false, 6)), 0xffff);
});

test('through the switch: TSO frames segmented for a port without a header or without TSO, passed whole otherwise', async () => {
  const { Switch, conservation } = await import('../../src/switch.js');
  const sw = new Switch(dp, 'vale5');
  const src = sw.attach('src'), plain = sw.attach('plain'), noTso = sw.attach('notso'), full = sw.attach('full');
  sw.setHeaderLength('src', 12); sw.setHeaderLength('notso', 12); sw.setHeaderLength('full', 12);
  sw.setAccept('notso', ['csum']);
  const f = frame({ payload: 4000 });
  f.bytes.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0); // broadcast: every port gets it
  const input = cat(vhdr(12, { flags: 1, gso: 1, gsoSize: 1448, start: f.l4, offset: 16 }), f.bytes);
  assert.equal(src.send([input]), 1);
  sw.round();
  const a = plain.recv(), b = noTso.recv(), c = full.recv();
  assert.equal(a.length, 3, 'no header: 3 segments');
  assert.ok(a.every((s) => csum(s.subarray(f.l4), pseudo(s, f, false, 6)) === 0xffff));
  assert.equal(b.length, 3, 'header but no TSO: 3 segments');
  assert.ok(b.every((s) => s[1] === 0 && csum(s.subarray(12 + f.l4), pseudo(s.subarray(12), f, false, 6)) === 0xffff));
  assert.equal(c.length, 1, 'TSO accepted: the frame as it is');
  assert.deepEqual(c[0], input);
  const law = conservation(sw.stats());
  assert.equal(law.segExtra, 4n);
  assert.ok(law.ok, JSON.stringify(law, (_, v) => (typeof v === 'bigint' ? String(v) : v)));
  sw.destroy();
});
