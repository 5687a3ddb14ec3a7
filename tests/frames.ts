// Frames for the tests, built and checksummed here, independently of the datapath and of the
// example functions: Ethernet, IPv4 with UDP/TCP, RFC 1071 sums, and a seeded generator.
import assert from 'node:assert/strict';
import { ip4, be16, station, BCAST, onesSum, Rng } from './unit/helpers.js';

// shared with the unit helpers, so both kinds of test build frames from one set of pieces
export { ip4, be16, station, BCAST, onesSum, Rng };

export const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

export const macB = (s: string): number[] => {
  const b = s.split(':').map((x) => parseInt(x, 16));
  assert.equal(b.length, 6, `test bug: MAC ${s}`);
  return b;
};
export const ipStr = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
export const put16 = (b: Uint8Array, o: number, v: number): void => { b[o] = (v >>> 8) & 255; b[o + 1] = v & 255; };
export const put32 = (b: Uint8Array, o: number, v: number): void => { put16(b, o, v >>> 16); put16(b, o + 2, v & 0xffff); };

/** The IPv4 header checksum of `hdr`, computed from scratch (its checksum field taken as zero). */
export function ipChecksum(hdr: Uint8Array): number {
  const z = hdr.slice(); z[10] = 0; z[11] = 0;
  return ~onesSum(z) & 0xffff;
}

/** An Ethernet frame of `len` bytes with a byte pattern after the header. */
export function ether(dst: string, src: string, type: number, len = 60): Uint8Array {
  const b = new Uint8Array(Math.max(len, 14));
  b.set(macB(dst)); b.set(macB(src), 6); put16(b, 12, type);
  for (let i = 14; i < b.length; i++) b[i] = (i * 7 + 3) & 255;
  return b.slice(0, len);
}

export interface Ip {
  dmac?: string; smac?: string; type?: number;
  src?: string; dst?: string; proto?: number; sport?: number; dport?: number;
  ttl?: number; len?: number; ihl?: number; version?: number; frag?: number; id?: number; badSum?: boolean;
}
export const TCP = 6, UDP = 17, ICMP = 1;

/** An Ethernet + IPv4 (+ UDP/TCP) frame with a correct header checksum unless badSum. */
export function ipFrame(o: Ip): Uint8Array {
  const len = o.len ?? 60, ihl = o.ihl ?? 5, proto = o.proto ?? UDP;
  const b = new Uint8Array(Math.max(len, 160));
  b.set(macB(o.dmac ?? '02:00:00:00:ff:00')); b.set(macB(o.smac ?? '02:00:00:00:00:01'), 6);
  put16(b, 12, o.type ?? 0x0800);
  const ip = 14;
  b[ip] = ((o.version ?? 4) << 4) | ihl;
  put16(b, ip + 2, len - 14);
  put16(b, ip + 4, o.id ?? 0x1234);
  put16(b, ip + 6, o.frag ?? 0x4000);
  b[ip + 8] = o.ttl ?? 64;
  b[ip + 9] = proto;
  put32(b, ip + 12, ip4(o.src ?? '10.0.0.1'));
  put32(b, ip + 16, ip4(o.dst ?? '10.1.0.1'));
  for (let i = 20; i < ihl * 4; i++) b[ip + i] = 1; // NOP options
  const l4 = ip + Math.max(ihl, 5) * 4;
  for (let i = l4; i < b.length; i++) b[i] = (i * 13 + 5) & 255;
  if (proto === UDP || proto === TCP) {
    put16(b, l4, o.sport ?? 1234);
    put16(b, l4 + 2, o.dport ?? 80);
    if (proto === UDP) { put16(b, l4 + 4, len - l4); put16(b, l4 + 6, 0); } else b[l4 + 12] = 0x50;
  }
  const hl = Math.max(ihl, 5) * 4;
  put16(b, ip + 10, ipChecksum(b.subarray(ip, ip + hl)) ^ (o.badSum ? 0x0101 : 0));
  return b.slice(0, len);
}
