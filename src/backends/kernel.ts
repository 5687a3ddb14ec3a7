// What TAP and AF_PACKET ports share: a kernel endpoint (an fd) on a named Linux interface,
// joined to the switch port of the same name, with the counters and the failure reasons both
// report. The moving of frames is each kind's own (tap.ts, af_packet.ts).
// A failing endpoint takes the port down with a reason; the switch and other ports go on.
import type { NativeHost } from '../host.js';
import type { Datapath } from '../datapath.js';
import type { SwitchPort, PortStats } from '../switch.js';
import { WasmapError } from '../errors.js';
import { parsePortName } from '../portname.js';
import type { AttachContext, Backend, Fields, Verdict } from './backend.js';

export abstract class KernelPort implements Backend {
  abstract readonly kind: 'tap' | 'af_packet' | 'af_xdp';
  down: string | null = null;
  rxFrames = 0; txFrames = 0; // frames read from / written to the kernel

  protected constructor(protected readonly host: NativeHost, protected readonly dp: Datapath,
                        readonly ifname: string, readonly port: SwitchPort, public fd: number) {}

  /** Frames the kernel refused or that could not be taken whole (each kind counts its own). */
  abstract get kernelDrops(): number;
  abstract pull(): number;
  abstract push(): number;
  /** Release what the kind holds besides the fd (mapped rings). */
  protected abstract release(): void;

  sleepFds(fds: number[]): Verdict {
    if (!this.down && this.fd >= 0) fds.push(this.fd);
    return 'sleep';
  }

  /** tap:IF or af_packet:IF with this interface (either prefix, as before the split). */
  answersTo(spec: string): boolean {
    const i = spec.indexOf(':');
    return ['tap', 'af_packet'].includes(spec.slice(0, i)) && spec.slice(i + 1) === this.ifname;
  }

  info(): Fields { return { ifname: this.ifname }; }
  stats(): Fields { return { kernelRx: this.rxFrames, kernelTx: this.txFrames, kernelDrops: this.kernelDrops }; }

  protected fail(op: string, errno: number): void {
    const names: Record<number, string> = { 5: 'EIO', 19: 'ENODEV', 77: 'EBADFD', 100: 'ENETDOWN', 6: 'ENXIO', 9: 'EBADF' };
    this.down = `${op} on ${this.kind}:${this.ifname} failed: ${names[-errno] ?? `errno ${-errno}`} (interface gone or down)`;
  }

  close(reason: string, detach?: () => PortStats): { stats?: PortStats } {
    if (!detach) this.down = reason; // a fault: listed down until detached
    const stats = detach?.();
    if (this.fd >= 0) {
      this.release();
      try { this.host.closeFd(this.fd); } catch { /* already gone */ }
      this.fd = -1;
    }
    return { stats };
  }
}

/** The checks and set-up both kernel kinds do on attach; `open` makes the endpoint and the port
 *  (through `attach`), releasing what it made when it fails. */
export function attachKernel<T extends Backend>(c: AttachContext, open: (ifname: string, hdr: number, attach: () => SwitchPort) => T, defaultHdr = 0): T {
  const hdr = vnetHdr(c.args, defaultHdr);
  const spec = parsePortName(c.spec);
  const full = `${c.sw.name}:${spec.name}`;
  const ifOf = (b: Backend | undefined) => (b instanceof KernelPort || (b && (b.kind === 'tap' || b.kind === 'af_packet'))) ? (b as Backend & { ifname?: string }).ifname : undefined;
  if (ifOf(c.attached.get(full)) !== undefined) throw new WasmapError('EBUSY', `${c.spec} is already attached to ${c.sw.name}`);
  for (const [k, b] of c.attached) if (ifOf(b) === spec.name) throw new WasmapError('EBUSY', `${spec.name} is already attached as ${k}`);
  // the switch port takes the interface's name as it is: a host port is no netmap name, and
  // '-' or '.' in it (rb-v0, eth0.5) are part of the name, not a ring suffix
  if (c.sw.port(spec.name)) throw new WasmapError('EBUSY', `${full} already exists (another kind of port has that name)`);
  const kp = open(spec.name, hdr, () => c.sw.attach(spec.name));
  if (hdr) c.sw.setHeaderLength(spec.name, hdr);
  if (hdr && typeof c.args.accept === 'string') c.sw.setAccept(spec.name, c.args.accept.split(',').filter(Boolean));
  return kp;
}

/** The vnet header length of an attach request: 0 (none), 10 or 12; `dflt` when not asked. */
export function vnetHdr(args: Record<string, unknown>, dflt = 0): number {
  const hdr = args.vnetHdr === undefined || args.vnetHdr === null ? dflt : Number(args.vnetHdr);
  if (![0, 10, 12].includes(hdr)) throw new WasmapError('EINVAL', `vnet header length must be 0, 10 or 12, not ${String(args.vnetHdr)}`);
  return hdr;
}
