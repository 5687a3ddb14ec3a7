// Loads the native host (build/wasmap_host.node) when it was built, and says clearly why not
// when it was not: in-process ports work without it; fd-backed memory needs it.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { WasmapError } from './errors.js';
import { findBuildFile } from './paths.js';

export interface NativeHost {
  /** memfd_create + ftruncate; returns the fd. */
  memfdCreate(name: string, size: number): number;
  /** mmap(MAP_SHARED|MAP_FIXED) the fd over [offset, offset+length) of the memory behind `view`. */
  mapFd(view: Uint8Array, offset: number, length: number, fd: number, fdOffset?: number): void;
  /** Put fresh zeroed anonymous pages back over a mapped span (never a hole). */
  unmap(view: Uint8Array, offset: number, length: number): void;
  closeFd(fd: number): void;
  pageSize(): number;
  version(): string;
  /** Attach to TAP `name` or create it (IFF_TAP|IFF_NO_PI, virtio-net header of hdrLen bytes), non-blocking. */
  tapOpen(name: string, hdrLen: number): { fd: number; name: string };
  /** An AF_PACKET socket bound to an existing interface, non-blocking, qdisc bypass. */
  packetOpen(ifname: string): number;
  /** Read frames from fd into a tx ring (the ring's address in the memory); advances head. -errno if the fd died. */
  fdToRing(view: Uint8Array, ring: number, fd: number, isSocket: boolean, max: number): number;
  /** Write the frames of an rx ring's [head, tail) to fd; advances head; frames the kernel
   *  refused are counted in dropped[0]. -errno if the fd died. */
  ringToFd(view: Uint8Array, ring: number, fd: number, isSocket: boolean, dropped: Float64Array): number;
  /** poll(2) for POLLIN on fds; returns each fd's revents. */
  pollFds(fds: number[], timeoutMs: number): number[];
}

let cached: NativeHost | null | undefined;
let reason: string | null = null;

export function loadHost(): NativeHost | null {
  if (cached !== undefined) return cached;
  const path = process.env.WASMAP_HOST_ADDON ?? findBuildFile('wasmap_host.node');
  if (!path || !existsSync(path)) {
    reason = `native host not found (looked for ${path ?? 'build/wasmap_host.node'})`;
    cached = null;
    return null;
  }
  try {
    cached = createRequire(import.meta.url)(path) as NativeHost;
    reason = null;
  } catch (err) {
    reason = `native host at ${path} failed to load: ${(err as Error).message}`;
    cached = null;
  }
  return cached;
}

export function hostMissingReason(): string | null {
  loadHost();
  return reason;
}

export function requireHost(): NativeHost {
  const h = loadHost();
  if (!h) throw new WasmapError('HOST_MISSING', `${reason}; build it with \`npm run build:native\` (needs python3, make, a C compiler and Node headers)`);
  return h;
}
