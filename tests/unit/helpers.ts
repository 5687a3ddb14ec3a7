// Shared helpers of the unit tests: frames with sequence numbers, a MAC parser independent of
// src/gen.ts, an RFC 1071 checksum, exact per-port counters and the conservation check.
import assert from 'node:assert/strict';
import { WasmapError } from '../../src/errors.js';
import { conservation, type PortStats, type Switch } from '../../src/switch.js';
import type { Region, RingView } from '../../src/port.js';

/** The clock handed to every switch round (seconds), so MAC aging is deterministic. */
export const NOW = 1_000_000;

export const NS_BUF_CHANGED = 0x1;
export const NS_NO_LEARN = 0x8;
export const NS_MOREFRAG = 0x20;
/** High byte of a VALE tx slot's flags naming port `index` as the destination. */
export const toPort = (index: number): number => (index + 1) << 8;
export const FLOOD = 255 << 8;

export const BCAST = 'ff:ff:ff:ff:ff:ff';
/** A locally administered unicast MAC 02:00:00:00:HH:LL. */
export function station(n: number): string {
  const h = (x: number) => x.toString(16).padStart(2, '0');
  return `02:00:00:00:${h((n >> 8) & 255)}:${h(n & 255)}`;
}

/** Six bytes of a MAC written aa:bb:cc:dd:ee:ff (independent of src/gen.ts). */
export function macBytes(s: string): Uint8Array {
  const parts = s.split(':');
  if (parts.length !== 6) throw new Error(`test bug: bad MAC ${s}`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

/** The MAC as netmap's lookup reads it: a little-endian 48-bit load of the six bytes. */
export function macValue(s: string): bigint {
  const b = macBytes(s);
  let v = 0n;
  for (let i = 5; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  return v;
}

/**
 * An Ethernet frame of `len` bytes: dst, src, ethertype 0x88b5 (local experimental), a 32-bit
 * big-endian sequence number at 14, then a pattern that depends on seq. Runts (< 14 bytes)
 * hold what fits.
 */
export function frame(dst: string, src: string, len = 60, seq = 0): Uint8Array {
  const f = new Uint8Array(len);
  const hdr = new Uint8Array(18);
  hdr.set(macBytes(dst), 0);
  hdr.set(macBytes(src), 6);
  hdr[12] = 0x88; hdr[13] = 0xb5;
  hdr[14] = (seq >>> 24) & 255; hdr[15] = (seq >>> 16) & 255; hdr[16] = (seq >>> 8) & 255; hdr[17] = seq & 255;
  f.set(hdr.subarray(0, Math.min(18, len)));
  for (let i = 18; i < len; i++) f[i] = (i * 7 + seq * 13) & 255;
  return f;
}
export const seqOf = (f: Uint8Array): number => ((f[14] << 24) | (f[15] << 16) | (f[16] << 8) | f[17]) >>> 0;

/** Write `frags` as one packet (MOREFRAG on all but the last slot) and advance head and cur. */
export function sendFrags(ring: RingView, frags: Uint8Array[], flags = 0, last = true): void {
  assert.ok(ring.space >= frags.length, `test bug: ${frags.length} fragments, ${ring.space} free slots`);
  let h = ring.head;
  frags.forEach((f, k) => {
    ring.buf(h).set(f);
    ring.setLen(h, f.length);
    ring.setFlags(h, flags | (k < frags.length - 1 || !last ? NS_MOREFRAG : 0));
    h = ring.next(h);
  });
  ring.head = h; ring.cur = h;
}

/** Split a frame into fragments of the given sizes (their sum must be the frame's length). */
export function split(f: Uint8Array, sizes: number[]): Uint8Array[] {
  assert.equal(sizes.reduce((a, b) => a + b, 0), f.length, 'test bug: fragment sizes');
  const out: Uint8Array[] = [];
  let at = 0;
  for (const s of sizes) { out.push(f.subarray(at, at + s)); at += s; }
  return out;
}

/** The error code a call throws ('ok' if it returns), asserting it is a WasmapError. */
export function errCode(fn: () => unknown): string {
  try { fn(); return 'ok'; } catch (e) {
    assert.ok(e instanceof WasmapError, `expected a WasmapError, got ${String(e)}`);
    return e.code;
  }
}
/** Assert `fn` throws WasmapError `code` whose message contains every string of `parts`. */
export function assertWasmapError(fn: () => unknown, code: string, ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof WasmapError, `expected a WasmapError, got ${String(e)}`);
    assert.equal(e.code, code, `code of: ${e.message}`);
    for (const p of parts) assert.ok(e.message.includes(p), `message '${e.message}' should mention '${p}'`);
    return true;
  }, `expected a WasmapError ${code}${parts.length ? ` mentioning ${parts.join(', ')}` : ''}`);
}

/** A port's counters as plain numbers (only the non-zero ones), for exact deepEqual checks. */
export interface Counters {
  tx?: number; txBytes?: number; rx?: number; rxBytes?: number; full?: number; broken?: number;
  noDst?: number; lookup?: number; size?: number; hdr?: number; txErrors?: number;
}
export function counters(p: PortStats): Counters {
  const all: Record<keyof Counters, bigint> = {
    tx: p.txPackets, txBytes: p.txBytes, rx: p.rxPackets, rxBytes: p.rxBytes, full: p.dropFull, broken: p.dropBroken,
    noDst: p.dropNoDst, lookup: p.dropLookup, size: p.dropSize, hdr: p.dropHdr, txErrors: p.txErrors,
  };
  const out: Counters = {};
  for (const [k, v] of Object.entries(all) as [keyof Counters, bigint][]) if (v !== 0n) out[k] = Number(v);
  return out;
}
/** Packet counters only (no byte counts), the usual thing to compare. */
export function pkts(p: PortStats): Counters {
  const c = counters(p);
  delete c.txBytes; delete c.rxBytes;
  return c;
}
export function portStats(sw: Switch, name: string): PortStats {
  const p = sw.stats().ports.find((s) => s.name === name);
  assert.ok(p, `no port ${name}`);
  return p;
}
/** Packet counters of every attached port, by name. */
export function allPkts(sw: Switch): Record<string, Counters> {
  return Object.fromEntries(sw.stats().ports.map((p) => [p.name, pkts(p)]));
}

/** sent + floodExtra + segExtra == received + drops, over the live ports and those in `gone`. */
export function assertConserved(sw: Switch, gone: PortStats[] = []): void {
  const c = conservation(sw.stats(), gone);
  assert.ok(c.ok, `conservation broken: sent ${c.sent} + floodExtra ${c.floodExtra} + segExtra ${c.segExtra} != received ${c.received} + drops ${c.drops}`);
}

export function assertAudit(...regions: Region[]): void {
  for (const r of regions) assert.deepEqual(r.audit(), [], 'every buffer in exactly one place');
}

/** RFC 1071 ones' complement sum of `b` (big-endian 16-bit words, odd byte padded), folded, not complemented. */
export function onesSum(b: Uint8Array, init = 0): number {
  let s = init;
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i] << 8) | b[i + 1];
  if (b.length & 1) s += b[b.length - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return s;
}
export const be16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1];
export const be32 = (b: Uint8Array, o: number): number => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
export const ip4 = (s: string): number => s.split('.').reduce((n, x) => n * 256 + Number(x), 0);

/** A small deterministic PRNG (xorshift32). */
export class Rng {
  private s: number;
  constructor(seed = 0x2545f491) { this.s = seed >>> 0 || 1; }
  next(): number { let x = this.s; x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; this.s = x; return x; }
  int(n: number): number { return this.next() % n; }
}
