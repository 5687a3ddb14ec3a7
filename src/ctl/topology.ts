// What a daemon was told to build, kept so that it can be saved (`wasmap ctl save`) and built
// again on the next start (`wasmap switch NAME --config FILE`): persistent interfaces, ports
// with their attach options (in attach order), and each switch's forwarding function with its
// configuration. Recorded from the requests the daemon relayed and the worker accepted, so the
// file holds exactly what succeeded. Passthrough guests are not kept (they belong to live
// processes). The file is JSON, rewritten whole (write + rename) on every change.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { WasmapError } from '../errors.js';

export interface PortEntry { switch: string; port: string; options: Record<string, unknown> }
export interface LookupEntry { switch: string; module: string; config?: unknown; fallback?: string; name?: string }
export interface TopologyFile { wasmap: 'topology'; version: 1; switches: string[]; interfaces: string[]; ports: PortEntry[]; lookups: LookupEntry[] }

type Req = { verb: string; args?: Record<string, unknown> };
type Rep = { ok: boolean; result?: unknown };

export class Topology {
  private readonly ports = new Map<string, PortEntry>(); // 'vale0:port' -> how it was attached
  private readonly lookups = new Map<string, LookupEntry>();
  private readonly interfaces = new Set<string>();

  constructor(readonly switches: string[], private readonly file: string | null = null) {}

  /** Note a request the worker accepted; save when it changed the topology. */
  record(req: Req, rep: Rep): void {
    if (!rep.ok) return;
    const a = req.args ?? {}, r = (rep.result ?? {}) as Record<string, unknown>;
    switch (req.verb) {
      case 'attach': {
        const { switch: sw, port, ...options } = a;
        if (typeof r.name !== 'string' || typeof sw !== 'string' || typeof port !== 'string') return;
        for (const [k, v] of Object.entries(options)) if (v === undefined || v === null) delete options[k];
        this.ports.set(r.name, { switch: sw, port, options });
        break;
      }
      case 'detach': if (typeof r.name === 'string') this.ports.delete(r.name); break;
      case 'set-lookup': {
        const sw = String(a.switch);
        if (a.module === 'default') this.lookups.delete(sw);
        else this.lookups.set(sw, { switch: sw, module: String(a.module), ...(a.config !== undefined ? { config: a.config } : {}), ...(a.fallback !== undefined ? { fallback: String(a.fallback) } : {}), ...(typeof a.name === 'string' ? { name: a.name } : {}) });
        break;
      }
      case 'newif': this.interfaces.add(String(a.name)); break;
      case 'delif': this.interfaces.delete(String(a.name)); break;
      default: return;
    }
    this.save();
  }

  toJSON(): TopologyFile {
    return { wasmap: 'topology', version: 1, switches: this.switches, interfaces: [...this.interfaces], ports: [...this.ports.values()], lookups: [...this.lookups.values()] };
  }

  private save(): void {
    if (!this.file) return;
    const tmp = `${this.file}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(this.toJSON(), null, 2) + '\n', { mode: 0o600 });
    renameSync(tmp, this.file); // a crash leaves the old file or the new one, never half of one
  }

  /** The requests that build `t` again, in order (interfaces, ports, functions). */
  static requests(t: TopologyFile): Req[] {
    return [
      ...t.interfaces.map((name) => ({ verb: 'newif', args: { name } })),
      ...t.ports.map((p) => ({ verb: 'attach', args: { ...p.options, switch: p.switch, port: p.port } })),
      ...t.lookups.map((l) => ({ verb: 'set-lookup', args: { ...l } })),
    ];
  }

  /** Read and check a topology file; null when it does not exist yet (a first start). */
  static load(file: string): TopologyFile | null {
    if (!existsSync(file)) return null;
    let t: unknown;
    try { t = JSON.parse(readFileSync(file, 'utf8')); } catch (e) { throw new WasmapError('EINVAL', `--config ${file}: not JSON: ${(e as Error).message}`); }
    const o = t as Partial<TopologyFile>;
    const bad = (why: string) => new WasmapError('EINVAL', `--config ${file}: ${why} (write one with 'wasmap ctl save FILE')`);
    if (!o || typeof o !== 'object' || o.wasmap !== 'topology') throw bad("not a wasmap topology (no \"wasmap\": \"topology\")");
    if (o.version !== 1) throw bad(`version ${String(o.version)}, this wasmap reads version 1`);
    if (!Array.isArray(o.switches) || !Array.isArray(o.ports) || !Array.isArray(o.lookups) || !Array.isArray(o.interfaces)) throw bad('switches, interfaces, ports and lookups must be arrays');
    for (const p of o.ports) if (!p || typeof p.switch !== 'string' || typeof p.port !== 'string' || typeof p.options !== 'object') throw bad(`a port entry needs switch, port and options: ${JSON.stringify(p).slice(0, 200)}`);
    for (const l of o.lookups) if (!l || typeof l.switch !== 'string' || typeof l.module !== 'string') throw bad('a lookup entry needs switch and module (base64)');
    return o as TopologyFile;
  }
}
