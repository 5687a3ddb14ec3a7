// Host ports: a kernel endpoint (a TAP device or an AF_PACKET socket on an existing interface)
// joined to a switch port. The native host moves whole batches between the fd and the port's
// rings, acting as the rings' user; a failing fd takes the port down with a reason, and the
// switch and the other ports go on.
import { NativeHost } from '../host.js';
import { SwitchPort } from '../switch.js';
import { WasmapError } from '../errors.js';

export type HostKind = 'tap' | 'af_packet';

export class HostPort {
  readonly kind: HostKind; readonly ifname: string; readonly port: SwitchPort; fd: number;
  down: string | null = null;
  rxFrames = 0; txFrames = 0; // frames read from / written to the kernel
  private readonly refused = new Float64Array(1); // frames the kernel refused (link down, too big)
  get kernelDrops(): number { return this.refused[0]; }
  constructor(private readonly host: NativeHost, kind: HostKind, ifname: string, port: SwitchPort, fd: number) {
    this.kind = kind; this.ifname = ifname; this.port = port; this.fd = fd;
  }

  static open(host: NativeHost, kind: HostKind, ifname: string, hdrLen: number, attach: () => SwitchPort): HostPort {
    let fd: number;
    try {
      fd = kind === 'tap' ? host.tapOpen(ifname, hdrLen).fd : host.packetOpen(ifname);
    } catch (e) {
      const err = e as Error & { code?: string };
      throw new WasmapError(err.code ?? 'EIO', `${kind}:${ifname}: ${err.message}`);
    }
    try {
      return new HostPort(host, kind, ifname, attach(), fd);
    } catch (e) {
      host.closeFd(fd);
      throw e;
    }
  }

  /** Kernel → tx ring. Returns frames moved (0 when down or nothing waiting). */
  pull(view: Uint8Array, max = 256): number {
    if (this.down) return 0;
    const n = this.host.fdToRing(view, this.port.tx.ring, this.fd, this.kind === 'af_packet', max);
    if (n < 0) { this.fail('read', n); return 0; }
    this.rxFrames += n;
    return n;
  }

  /** rx ring → kernel. Returns frames moved. */
  push(view: Uint8Array): number {
    if (this.down) return 0;
    const before = this.refused[0];
    const n = this.host.ringToFd(view, this.port.rx.ring, this.fd, this.kind === 'af_packet', this.refused);
    if (n < 0) { this.fail('write', n); return 0; }
    this.txFrames += n - (this.refused[0] - before);
    return n;
  }

  private fail(op: string, errno: number): void {
    const names: Record<number, string> = { 5: 'EIO', 19: 'ENODEV', 77: 'EBADFD', 100: 'ENETDOWN', 6: 'ENXIO', 9: 'EBADF' };
    this.down = `${op} on ${this.kind}:${this.ifname} failed: ${names[-errno] ?? `errno ${-errno}`} (interface gone or down)`;
  }

  close(): void {
    if (this.fd >= 0) { try { this.host.closeFd(this.fd); } catch { /* already gone */ } this.fd = -1; }
  }
}
