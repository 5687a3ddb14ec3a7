// Loads the native host (build/wasmap_host.node) when it was built, and says clearly why not
// when it was not: in-process ports work without it; fd-backed memory needs it.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { WasmapError } from './errors.js';
import { findBuildFile } from './paths.js';

/** Where one AF_XDP ring's words lie in the memory (offsets). */
export interface XskRingWords { producer: number; consumer: number; flags: number; desc: number }

export interface NativeHost {
  /** memfd_create(MFD_CLOEXEC) + ftruncate; returns the fd. `sealed`: no one holding the fd
   *  can shrink or grow it afterwards (F_SEAL_SHRINK|GROW|SEAL), so handing it out is safe;
   *  'allow': MFD_ALLOW_SEALING without seals (whoever gets the fd may seal it). */
  memfdCreate(name: string, size: number, sealed?: boolean | 'allow'): number;
  /** mmap(MAP_SHARED|MAP_FIXED) the fd over [offset, offset+length) of the memory behind `view`
   *  (a Uint8Array over a WebAssembly.Memory's buffer); offsets and length page-aligned. */
  mapFd(view: Uint8Array, offset: number, length: number, fd: number, fdOffset?: number): void;
  /** Put fresh zeroed anonymous pages back over a span (never a hole, whatever was there). */
  unmap(view: Uint8Array, offset: number, length: number): void;
  closeFd(fd: number): void;
  /** Guest RAM from a peer: add F_SEAL_SHRINK (the peer can then never shrink the file under
   *  our mapping), then check it is a regular file of at least `end` bytes (EINVAL if not).
   *  sealed false, with why, when it cannot be sealed: fence its mapping instead. */
  sealFd(fd: number, end: number): { sealed: boolean; why: string | null; pageSize: number };
  /** Bytes to add to `offset` so the absolute address of view[offset + gap] is a multiple of
   *  `align` (a power of 2): for mappings that need more than the memory's base alignment. */
  alignGap(view: Uint8Array, offset: number, align: number): number;
  /** A SIGBUS inside [offset, offset+length) of the memory (a peer shrank the file mapped
   *  there) maps zeroed pages over the whole span, and is counted, instead of killing the
   *  process. unmap() removes the fences inside the span it restores. */
  fence(view: Uint8Array, offset: number, length: number): void;
  unfence(view: Uint8Array, offset: number, length: number): void;
  /** SIGBUS faults mended in the fences inside the span (0 while the peer behaved). */
  fenceFaults(view: Uint8Array, offset: number, length: number): number;
  /** Fences registered now, and faults mended since the process started. */
  fenceStats(): { fences: number; faults: number };
  /** A view of the count of faults the fences mended: changes only when one caught a fault (read it, no call). */
  fenceGeneration(): Uint32Array;
  pageSize(): number;
  version(): string;
  /** Attach to TAP `name` or create it (IFF_TAP|IFF_NO_PI, virtio-net header of hdrLen bytes), non-blocking. */
  tapOpen(name: string, hdrLen: number): { fd: number; name: string };
  /** An AF_PACKET socket bound to an existing interface, non-blocking, qdisc bypass. */
  packetOpen(ifname: string): number;
  /** Read frames from fd into a tx ring (the ring's address in the memory); advances head. -errno if the fd died.
   *  A frame longer than the slots one read may take (or a datagram cut by the kernel) is
   *  dropped whole and counted in dropped[0]; slots carry at most 65535 bytes (u16 len). */
  fdToRing(view: Uint8Array, ring: number, fd: number, isSocket: boolean, max: number, dropped?: Float64Array): number;
  /** Write the frames of an rx ring's [head, tail) to fd; advances head; frames the kernel
   *  refused are counted in dropped[0]. -errno if the fd died. */
  ringToFd(view: Uint8Array, ring: number, fd: number, isSocket: boolean, dropped: Float64Array, minLen?: number): number;
  /** poll(2) for POLLIN on fds; returns each fd's revents. */
  pollFds(fds: number[], timeoutMs: number): number[];
  /** A send-only AF_PACKET socket whose frames start with a vnet header of that length; -errno when the kernel cannot take it. */
  packetTxOpen(ifname: string, vnetHdrLen: number): number;
  /** AF_PACKET socket with TPACKET_V2 rx and tx rings (frames × frameSize bytes each) mapped over
   *  [offset, offset + bytes) of the memory behind `view`, rx ring first; with copy, frames larger
   *  than a ring frame are marked TP_STATUS_COPY and queued whole on the socket (packetRecv). */
  packetRingOpen(ifname: string, view: Uint8Array, offset: number, rxFrames: number, txFrames: number, frameSize: number, copy?: boolean): { fd: number; rx: number; tx: number; rxFrames: number; txFrames: number; frameSize: number; bytes: number };
  /** Ask the kernel to send what the tx ring holds; -errno when the socket is dead. */
  packetKick(fd: number): number;
  /** Frames the kernel dropped since the last call because the AF_PACKET rx ring was full (PACKET_STATISTICS), or -errno. */
  packetDrops(fd: number): number;
  /** Up to count frames from an AF_PACKET ring socket's queue (its TP_STATUS_COPY frames, opened with copy) into count size-byte
   *  buffers at bufOffset, their lengths (recv with MSG_TRUNC: header + whole frame; 0: consumed but refused) as u32 at lensOffset.
   *  Returns frames received (stops when the queue is empty), or -errno for a dead socket. */
  packetRecv(fd: number, view: Uint8Array, lensOffset: number, bufOffset: number, size: number, count: number): number;
  /** An XSKMAP and the XDP program redirecting rx queue i to its entry i (else XDP_PASS),
   *  attached to IFNAME by a bpf_link (closing `link` detaches it). mode 0: native, falling
   *  back to skb; 1: native only; 2: skb only. */
  xdpAttach(ifname: string, mode: number, mapEntries: number): { link: number; prog: number; map: number; mode: 'native' | 'skb' };
  /** An XDP socket on IFNAME's rx queue: UMEM = [umemOff, +umemBytes) of the memory (chunks of
   *  frameSize), its fill/comp/rx/tx rings of n entries mmapped over [ringsOff, +ringBytes).
   *  zeroCopy 0 auto, 1 on, 2 off. Ring words are returned as memory offsets. */
  xskOpen(ifname: string, queue: number, view: Uint8Array, umemOff: number, umemBytes: number, frameSize: number, ringsOff: number, n: number, zeroCopy: number): {
    fd: number; zeroCopy: boolean; ringBytes: number;
    fill: XskRingWords; comp: XskRingWords; rx: XskRingWords; tx: XskRingWords;
  };
  /** XSKMAP[queue] = the socket. */
  xskMapSet(mapFd: number, queue: number, xskFd: number): void;
  /** sendto() until the kernel has taken the tx ring (or stops progressing); -errno when the socket is dead. */
  xskKick(fd: number, view: Uint8Array, txProducer: number, txConsumer: number): number;
  /** recvfrom() for a fill ring that asked for a wake-up; -errno when the socket is dead. */
  xskWakeRx(fd: number): number;
  /** XDP_STATISTICS and the pending SO_ERROR (ENETDOWN once the interface vanished); null when the socket is gone. */
  xskStats(fd: number): { rxDropped: number; rxInvalid: number; txInvalid: number; rxRingFull: number; fillRingEmpty: number; txRingEmpty: number; error: number } | null;
  /** A non-blocking UDP socket bound to ip:port (0: ephemeral). receive: UDP_GRO and a big
   *  receive buffer; else a send-only socket. gro/gso: the kernel has UDP_GRO / UDP_SEGMENT. */
  udpOpen(ip: string, port: number, receive: boolean): { fd: number; port: number; gro: boolean; gso: boolean };
  /** recvmmsg on n messages the datapath wrote at `msgs` (offsets, relocated here); datagrams received, 0 when none, -errno for a dead socket. */
  udpRecv(view: Uint8Array, fd: number, msgs: number, n: number): number;
  /** sendmmsg the n messages at `msgs`; messages taken, -errno for a dead socket; counts[0] += dropped (socket full), counts[1] += refused. */
  udpSend(view: Uint8Array, fd: number, msgs: number, n: number, counts: Float64Array): number;
  /** A non-blocking eventfd, to wake a thread sleeping in pollFds; signal adds 1, drain reads. */
  eventfdCreate(): number;
  eventfdSignal(fd: number): void;
  /** Reads the eventfd: how many signals arrived since the last drain (0 if none). */
  eventfdDrain(fd: number): number;
  /** A blocking, close-on-exec unix stream socket connected to `path`. */
  unixConnect(path: string): number;
  /** A non-blocking listening unix socket at path (remove a stale socket file first). */
  unixListen(path: string, backlog?: number): number;
  /** The next waiting connection's fd (blocking socket, close-on-exec), or -1 when none waits. */
  unixAccept(fd: number): number;
  /** sendmsg the whole of `bytes`, with `fds` (≤ 8) attached as SCM_RIGHTS. noWait: never
   *  block on a full socket (throws EAGAIN instead) — for peers that must not stall us. */
  sendFds(fd: number, bytes: Uint8Array, fds: number[], noWait?: boolean): number;
  /** recvmsg up to maxBytes and any fds (close-on-exec); null on timeout, empty data when closed. */
  recvFds(fd: number, maxBytes: number, timeoutMs: number): { data: Uint8Array; fds: number[] } | null;
}

// Every function the interface promises. An addon built from older sources loads fine but
// lacks some; better to say "rebuild" here than fail with "x is not a function" mid-run.
const FUNCTIONS = ['memfdCreate', 'mapFd', 'unmap', 'closeFd', 'sealFd', 'alignGap', 'fence', 'unfence', 'fenceFaults', 'fenceStats', 'fenceGeneration', 'pageSize', 'version',
  'tapOpen', 'packetOpen', 'fdToRing', 'ringToFd', 'pollFds', 'packetRingOpen', 'packetTxOpen', 'packetKick', 'packetDrops', 'packetRecv', 'xdpAttach', 'xskOpen', 'xskMapSet', 'xskKick', 'xskWakeRx', 'xskStats', 'eventfdCreate', 'eventfdSignal', 'eventfdDrain', 'unixConnect', 'unixListen', 'unixAccept', 'sendFds', 'recvFds', 'udpOpen', 'udpRecv', 'udpSend'] as const satisfies readonly (keyof NativeHost)[];

let cached: NativeHost | null | undefined;
let reason: string | null = null;

function asHost(mod: unknown): NativeHost | string {
  if (typeof mod !== 'object' || mod === null) return 'it exports no object';
  const missing = FUNCTIONS.filter((f) => typeof (mod as Record<string, unknown>)[f] !== 'function');
  if (missing.length) return `it lacks ${missing.join(', ')} (built from older sources?)`;
  return mod as NativeHost;
}

/** The native host, or null when it is not built or does not load (see hostMissingReason). */
export function loadHost(): NativeHost | null {
  if (cached !== undefined) return cached;
  const fromEnv = process.env.WASMAP_HOST_ADDON;
  // resolved against the working directory, as a user typing the variable expects
  const path = fromEnv ? resolve(fromEnv) : findBuildFile('wasmap_host.node');
  cached = null;
  if (!path || !existsSync(path)) {
    reason = fromEnv
      ? `native host not found at ${path} (from WASMAP_HOST_ADDON)`
      : `native host not found (looked for build/wasmap_host.node above ${new URL('.', import.meta.url).pathname})`;
    return null;
  }
  let mod: unknown;
  try {
    mod = createRequire(import.meta.url)(path) as unknown;
  } catch (err) {
    reason = `native host at ${path} failed to load: ${err instanceof Error ? err.message : String(err)}`;
    return null;
  }
  const host = asHost(mod);
  if (typeof host === 'string') {
    reason = `native host at ${path} is unusable: ${host}`;
    return null;
  }
  reason = null;
  cached = host;
  return host;
}

/** Why loadHost() returns null (the path tried and the load error); null when it loaded. */
export function hostMissingReason(): string | null {
  loadHost();
  return reason;
}

/** The native host; throws WasmapError('HOST_MISSING') saying why and how to build it. */
export function requireHost(): NativeHost {
  const h = loadHost();
  if (!h) throw new WasmapError('HOST_MISSING', `${reason}; build it with \`npm run build:native\` (needs python3, make, a C compiler and Node headers)`);
  return h;
}
