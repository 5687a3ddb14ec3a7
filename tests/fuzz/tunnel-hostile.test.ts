// A hostile wire at VXLAN and Geneve tunnel ports (#18): datagrams of garbage, truncated
// tunnel headers and inner frames, bad flags, wrong versions, critical and overrunning Geneve
// options, unknown VNIs, sent with a plain UDP socket at tunnel ports of an in-process runner
// (loopback only). VNI 1 and VNI 2 share one socket and live on two switches. Checked: nothing
// throws, every frame at a switch carries its own VNI's mark (never the other's), every good
// datagram is delivered, and every bad one is counted under its reason: datagrams received =
// delivered + counted drops, exactly.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { Runner } from '../../src/runner.js';
import { loadHost } from '../../src/host.js';

const skip = loadHost() ? false : 'native host not built';
const SEED = process.env.WASMAP_FUZZ_SEED !== undefined ? Number(process.env.WASMAP_FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s; };
  return { n: (k: number) => next() % k, p: (x: number) => next() / 2 ** 32 < x };
}

let runner: Runner | null = null;
after(() => runner?.close());

/** An inner broadcast frame marked with its VNI (so a wrong delivery shows), `len` bytes. */
function innerFrame(vni: number, len = 100): Buffer {
  const f = Buffer.alloc(Math.max(len, 14));
  f.fill(0xff, 0, 6);
  f.set([2, 0, 0, 0, vni & 255, 1], 6);
  f.writeUInt16BE(0x88b5, 12); // local experimental ethertype
  if (f.length >= 18) f.writeUInt32BE(0x564e4900 | (vni & 255), 14); // 'VNI' + vni
  return f;
}
const vxlanHdr = (vni: number, flags = 0x08) => { const h = Buffer.alloc(8); h[0] = flags; h.writeUInt32BE((vni << 8) >>> 0, 4); return h; };
function geneveHdr(vni: number, o: { ver?: number; optWords?: number; oam?: boolean; crit?: boolean; proto?: number } = {}): Buffer {
  const h = Buffer.alloc(8);
  h[0] = ((o.ver ?? 0) << 6) | (o.optWords ?? 0);
  h[1] = (o.oam ? 0x80 : 0) | (o.crit ? 0x40 : 0);
  h.writeUInt16BE(o.proto ?? 0x6558, 2);
  h.writeUInt32BE((vni << 8) >>> 0, 4);
  return h;
}
/** Geneve options: [class 16][type 8][len 5 bits words] + data. */
const opt = (type: number, words: number) => { const b = Buffer.alloc(4 + 4 * words); b.writeUInt16BE(0x0102, 0); b[2] = type; b[3] = words; b.fill(0xab, 4); return b; };

async function send(port: number, dgrams: Buffer[]): Promise<void> {
  const s = createSocket('udp4');
  for (const d of dgrams) await new Promise<void>((res, rej) => s.send(d, port, '127.0.0.1', (e) => (e ? rej(e) : res())));
  s.close();
}

type Cases = { dgrams: Buffer[]; good: Map<number, number>; expect: Record<string, number> };

function vxlanCases(seed: number): Cases {
  const r = rng(seed), dgrams: Buffer[] = [], good = new Map([[1, 0], [2, 0]]);
  const expect: Record<string, number> = { short: 0, badFlags: 0, unknownVni: 0, innerShort: 0 };
  for (let i = 0; i < 600; i++) {
    const k = r.n(7), vni = 1 + r.n(2);
    if (k === 0) { dgrams.push(Buffer.concat([vxlanHdr(vni), innerFrame(vni, 14 + r.n(1400))])); good.set(vni, good.get(vni)! + 1); }
    else if (k === 1) { dgrams.push(Buffer.from(Array.from({ length: r.n(8) }, () => r.n(256)))); expect.short++; } // shorter than the header (0 too)
    else if (k === 2) { // a flag other than I, or I missing, or the reserved VNI byte set
      const h = vxlanHdr(vni, r.p(0.5) ? 0 : 0x08 | (1 << r.n(3)) << 4);
      if (h[0] === 0x08) h[7] = 1;
      dgrams.push(Buffer.concat([h, innerFrame(vni)])); expect.badFlags++;
    } else if (k === 3) { dgrams.push(Buffer.concat([vxlanHdr(3 + r.n(1000)), innerFrame(1)])); expect.unknownVni++; }
    else if (k === 4) { dgrams.push(Buffer.concat([vxlanHdr(vni), Buffer.alloc(r.n(14), 0xee)])); expect.innerShort++; }
    else if (k === 5) { // garbage: random bytes, counted under whatever reason they hit (or delivered if they parse)
      const g = Buffer.from(Array.from({ length: 8 + r.n(200) }, () => r.n(256)));
      g[0] = 0x08; g[1] = g[2] = g[3] = g[7] = 0; g[4] = 0; g[5] = 0; g[6] = 7; // a VNI nobody has
      dgrams.push(g); expect.unknownVni++;
    } else { dgrams.push(Buffer.concat([geneveHdr(vni), innerFrame(vni)])); expect.badFlags++; } // Geneve at a VXLAN port
  }
  return { dgrams, good, expect };
}

function geneveCases(seed: number): Cases {
  const r = rng(seed), dgrams: Buffer[] = [], good = new Map([[1, 0], [2, 0]]);
  const expect: Record<string, number> = { short: 0, badVersion: 0, critical: 0, oam: 0, badProtocol: 0, badOptions: 0, unknownVni: 0 };
  for (let i = 0; i < 600; i++) {
    const k = r.n(8), vni = 1 + r.n(2);
    if (k === 0) { // good, with non-critical options to skip
      const opts = Buffer.concat(Array.from({ length: r.n(3) }, () => opt(r.n(128), r.n(4))));
      dgrams.push(Buffer.concat([geneveHdr(vni, { optWords: opts.length / 4 }), opts, innerFrame(vni, 14 + r.n(1400))])); good.set(vni, good.get(vni)! + 1);
    } else if (k === 1) { dgrams.push(Buffer.concat([geneveHdr(vni, { ver: 1 + r.n(3) }), innerFrame(vni)])); expect.badVersion++; }
    else if (k === 2) { dgrams.push(Buffer.concat([geneveHdr(vni, { crit: true }), innerFrame(vni)])); expect.critical++; }
    else if (k === 3) { const o = opt(0x80 | r.n(128), 1); dgrams.push(Buffer.concat([geneveHdr(vni, { optWords: o.length / 4 }), o, innerFrame(vni)])); expect.critical++; }
    else if (k === 4) { dgrams.push(Buffer.concat([geneveHdr(vni, { oam: true }), innerFrame(vni)])); expect.oam++; }
    else if (k === 5) { dgrams.push(Buffer.concat([geneveHdr(vni, { proto: 0x0800 }), innerFrame(vni)])); expect.badProtocol++; }
    else if (k === 6) { // an option whose length runs past the options' end
      const o = opt(1, 3); const h = geneveHdr(vni, { optWords: 2 });
      dgrams.push(Buffer.concat([h, o.subarray(0, 8), innerFrame(vni)])); expect.badOptions++;
    } else { // options longer than the datagram, or truncated header
      dgrams.push(r.p(0.5) ? Buffer.concat([geneveHdr(vni, { optWords: 63 }), Buffer.alloc(r.n(200))]) : Buffer.alloc(r.n(8))); expect.short++;
    }
  }
  return { dgrams, good, expect };
}

async function run(kind: 'vxlan' | 'geneve', port: number, cases: Cases): Promise<void> {
  const rn = runner!;
  rn.attach('vale0', `${kind}:127.0.0.1:${port}`, { vni: 1, name: `${kind}1` });
  rn.attach('vale1', `${kind}:127.0.0.1:${port}`, { vni: 2, name: `${kind}2` });
  const v = [rn.attach('vale0', `v${kind}0`), rn.attach('vale1', `v${kind}1`)];
  void v;
  const got = new Map([[1, 0], [2, 0]]);
  const take = () => {
    for (const [vni, sw] of [[1, 'vale0'], [2, 'vale1']] as const) {
      for (const f of rn.vale.switch(sw).port(`v${kind}${vni - 1}`)!.recv()) {
        assert.equal(f.readUInt8?.(0) ?? f[0], 0xff);
        if (f.length >= 18) assert.equal(f[17], vni, `a frame of VNI ${f[17]} arrived on VNI ${vni}'s switch`);
        assert.equal(f[10], vni, `inner source of VNI ${f[10]} on VNI ${vni}'s switch`);
        got.set(vni, got.get(vni)! + 1);
      }
    }
  };
  for (let i = 0; i < cases.dgrams.length; i += 50) {
    await send(port, cases.dgrams.slice(i, i + 50));
    for (let k = 0; k < 20; k++) { rn.step(); take(); }
  }
  for (let k = 0; k < 200; k++) { rn.step(); take(); await new Promise((r) => setImmediate(r)); }
  const stats = rn.stats() as { ports: { name: string; down: string | null; tunnel?: { rxFrames: number; drops: Record<string, number>; socket: { datagrams: number; drops: Record<string, number> } } }[] }[];
  const p1 = stats[0].ports.find((p) => p.name === `${kind}1`)!, p2 = stats[1].ports.find((p) => p.name === `${kind}2`)!;
  assert.equal(p1.down, null); assert.equal(p2.down, null);
  assert.deepEqual(got, cases.good, `seed ${SEED}: every good datagram delivered to its own VNI`);
  const sock = p1.tunnel!.socket;
  assert.equal(sock.datagrams, cases.dgrams.length, 'the socket saw every datagram');
  const counted = Object.values(sock.drops).reduce((a, b) => a + b, 0) + p1.tunnel!.drops.innerShort + p2.tunnel!.drops.innerShort + p1.tunnel!.drops.ringFull + p2.tunnel!.drops.ringFull;
  assert.equal(p1.tunnel!.rxFrames + p2.tunnel!.rxFrames + counted, cases.dgrams.length, `seed ${SEED}: received = delivered + counted drops (${JSON.stringify(sock.drops)})`);
  for (const [reason, n] of Object.entries(cases.expect)) {
    const c = reason === 'innerShort' ? p1.tunnel!.drops.innerShort + p2.tunnel!.drops.innerShort : sock.drops[reason];
    assert.equal(c, n, `seed ${SEED}: ${reason}`);
  }
}

test(`hostile datagrams at VXLAN ports: counted by reason, never to the wrong VNI (seed ${SEED})`, { skip }, async () => {
  runner ??= new Runner(['vale0', 'vale1']);
  await run('vxlan', 20000 + (process.pid % 20000), vxlanCases(SEED));
});

test(`hostile datagrams at Geneve ports: options skipped, critical/version/OAM dropped and counted (seed ${SEED})`, { skip }, async () => {
  runner ??= new Runner(['vale0', 'vale1']);
  await run('geneve', 40000 + (process.pid % 20000), geneveCases(SEED ^ 0x5a5a));
});
