// Prometheus text exposition of the daemon's counters.
interface PortRow { name: string; kind: string; [k: string]: unknown }
interface SwitchRow { name: string; rounds: number; frames: number; floodExtra: number; ports: PortRow[] }

const PORT_COUNTERS: [string, string, string][] = [
  ['txPackets', 'wasmap_port_tx_packets_total', 'Frames taken from the port\'s tx ring.'],
  ['txBytes', 'wasmap_port_tx_bytes_total', 'Bytes taken from the port\'s tx ring.'],
  ['rxPackets', 'wasmap_port_rx_packets_total', 'Frames delivered into the port\'s rx ring.'],
  ['rxBytes', 'wasmap_port_rx_bytes_total', 'Bytes delivered into the port\'s rx ring.'],
  ['txErrors', 'wasmap_port_tx_errors_total', 'Syncs refused because the port\'s user broke its ring.'],
];
const DROPS: [string, string][] = [['dropFull', 'rx_full'], ['dropBroken', 'rx_broken'], ['dropNoDst', 'no_destination'], ['dropLookup', 'lookup'], ['dropSize', 'too_big'], ['dropHdr', 'vnet_header_mismatch']];

export function prometheus(stats: SwitchRow[]): string {
  const out: string[] = [];
  const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  for (const [key, metric, help] of PORT_COUNTERS) {
    out.push(`# HELP ${metric} ${help}`, `# TYPE ${metric} counter`);
    for (const s of stats) for (const p of s.ports) out.push(`${metric}{switch="${esc(s.name)}",port="${esc(p.name)}",kind="${p.kind}"} ${Number(p[key] ?? 0)}`);
  }
  out.push('# HELP wasmap_port_drops_total Frames dropped, by reason.', '# TYPE wasmap_port_drops_total counter');
  for (const s of stats) for (const p of s.ports) for (const [key, reason] of DROPS) out.push(`wasmap_port_drops_total{switch="${esc(s.name)}",port="${esc(p.name)}",reason="${reason}"} ${Number(p[key] ?? 0)}`);
  out.push('# HELP wasmap_port_up 1 while the port\'s kernel endpoint works.', '# TYPE wasmap_port_up gauge');
  for (const s of stats) for (const p of s.ports) out.push(`wasmap_port_up{switch="${esc(s.name)}",port="${esc(p.name)}"} ${p.down ? 0 : 1}`);
  out.push('# HELP wasmap_switch_rounds_total Forwarding rounds run.', '# TYPE wasmap_switch_rounds_total counter');
  for (const s of stats) out.push(`wasmap_switch_rounds_total{switch="${esc(s.name)}"} ${s.rounds}`);
  out.push('# HELP wasmap_switch_flood_copies_total Copies made by flooding beyond the first.', '# TYPE wasmap_switch_flood_copies_total counter');
  for (const s of stats) out.push(`wasmap_switch_flood_copies_total{switch="${esc(s.name)}"} ${s.floodExtra}`);
  return out.join('\n') + '\n';
}
