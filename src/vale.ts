// VALE as netmap users know it: ports named `valeX:NAME`, switches created on first use and
// freed with their last port, and persistent ports (newif/delif) that exist on their own and
// can be attached to a switch and detached again.
import { Datapath } from './datapath.js';
import { WasmapError } from './errors.js';
import { Region } from './port.js';
import { parsePortName, NetmapPortSpec } from './portname.js';
import { Switch, SwitchPort, PortStats, AttachOptions } from './switch.js';

/** Persistent ports live until delif: a cap, so a control client cannot fill the memory with them. */
export const MAX_PERSISTENT = 256;

export interface ValeListEntry { name: string; switchName: string; port: string; index: number; persistent: boolean }

export class Vale {
  readonly dp: Datapath;
  private readonly switches = new Map<string, Switch>();
  private readonly persistent = new Map<string, { region: Region; on: string | null }>();
  private readonly pinned = new Set<string>(); // created on purpose (a daemon's switch): kept when empty
  constructor(dp: Datapath) { this.dp = dp; }

  private spec(name: string): NetmapPortSpec & { switchName: string; port: string } {
    const s = parsePortName(name);
    if (s.kind !== 'vale' || !s.switchName || !s.port || s.pipe || s.mode !== 1 || s.flags || s.options) {
      throw new WasmapError('EINVAL', `'${name}' is not a VALE port name: write valeX:NAME, e.g. vale0:p1`);
    }
    return s as NetmapPortSpec & { switchName: string; port: string };
  }

  /** The switch named `name`, created if it does not exist (as netmap does on first use);
   *  `pin` keeps it alive without ports (netmap's NM_BDG_ACTIVE). */
  switch(name: string, pin = false): Switch {
    let sw = this.switches.get(name);
    if (!sw) { sw = new Switch(this.dp, name); this.switches.set(name, sw); }
    if (pin) this.pinned.add(name);
    return sw;
  }
  has(name: string): boolean { return this.switches.has(name); }
  switchNames(): string[] { return [...this.switches.keys()]; }
  /** One forwarding round on every switch (the runner's pass; no array made per pass). */
  rounds(now: number): number {
    let moved = 0;
    for (const sw of this.switches.values()) moved += sw.round(now);
    return moved;
  }

  /** Attach `valeX:NAME`: a persistent port NAME if one exists, else a new ephemeral port. */
  attach(name: string, o: AttachOptions = {}): SwitchPort {
    const s = this.spec(name);
    const p = this.persistent.get(s.port);
    if (p?.on) throw new WasmapError('EBUSY', `persistent port ${s.port} is already attached to ${p.on}; detach it first`);
    const sw = this.switch(s.switchName);
    try {
      const port = sw.attach(s.port, { ...o, region: p?.region });
      if (p) p.on = s.switchName;
      return port;
    } finally {
      if (sw.list().length === 0) this.drop(s.switchName);
    }
  }

  /** Detach `valeX:NAME`; returns its last counters. An emptied switch is freed. */
  detach(name: string): PortStats {
    const s = this.spec(name);
    const sw = this.switches.get(s.switchName);
    if (!sw) throw new WasmapError('ENOENT', `no switch ${s.switchName}; switches: ${this.switchNames().join(', ') || 'none'}`);
    const stats = sw.detach(s.port);
    const p = this.persistent.get(s.port);
    if (p && p.on === s.switchName) p.on = null;
    if (sw.list().length === 0) this.drop(s.switchName);
    return stats;
  }

  private drop(name: string, force = false): void {
    if (this.pinned.has(name) && !force) return;
    this.pinned.delete(name);
    this.switches.get(name)?.destroy();
    this.switches.delete(name);
  }

  /** Create a persistent port (netmap's VALE_NEWIF). */
  newif(name: string, o: { slots?: number; bufSize?: number } = {}): Region {
    if (!/^[A-Za-z0-9_]{1,15}$/.test(name)) throw new WasmapError('EINVAL', `bad persistent port name '${name}': 1 to 15 letters, digits or _`);
    if (name.startsWith('vale')) throw new WasmapError('EINVAL', `a persistent port name must not start with 'vale' ('${name}')`);
    if (this.persistent.has(name)) throw new WasmapError('EEXIST', `persistent port ${name} already exists`);
    if (this.persistent.size >= MAX_PERSISTENT) throw new WasmapError('ENOSPC', `${MAX_PERSISTENT} persistent ports exist already (each holds its rings and buffers); delif one first`);
    const region = new Region(this.dp, { slots: o.slots ?? 1024, bufSize: o.bufSize, name });
    this.persistent.set(name, { region, on: null });
    return region;
  }

  /** Remove a persistent port (netmap's VALE_DELIF): it must not be attached. */
  delif(name: string): void {
    const p = this.persistent.get(name);
    if (!p) throw new WasmapError('ENXIO', `no persistent port ${name}`);
    if (p.on) throw new WasmapError('EBUSY', `persistent port ${name} is attached to ${p.on}; detach it first`);
    p.region.close();
    this.persistent.delete(name);
  }

  list(): ValeListEntry[] {
    const out: ValeListEntry[] = [];
    for (const [swName, sw] of this.switches) {
      for (const p of sw.list()) out.push({ name: `${swName}:${p.name}`, switchName: swName, port: p.name, index: p.index, persistent: this.persistent.has(p.name) });
    }
    return out;
  }

  close(): void {
    for (const name of [...this.switches.keys()]) this.drop(name, true);
    for (const p of this.persistent.values()) p.region.close();
    this.persistent.clear();
  }
}
