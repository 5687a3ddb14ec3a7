// Prometheus text exposition of the daemon's counters.
interface PortRow { name: string; kind: string; [k: string]: unknown }
interface FnRow { name: string; state: string; frames: number; faultDrops: number; counters: Record<string, number> }
interface SwitchRow { name: string; poll?: string; forwarder?: { tid: number; cpuMs: number } | null; rounds: number; frames: number; floodExtra: number; ports: PortRow[]; lookup?: { mode: string; function: FnRow | null } }

const PORT_COUNTERS: [string, string, string][] = [
  ['txPackets', 'wasmap_port_tx_packets_total', 'Frames taken from the port\'s tx ring.'],
  ['txBytes', 'wasmap_port_tx_bytes_total', 'Bytes taken from the port\'s tx ring.'],
  ['rxPackets', 'wasmap_port_rx_packets_total', 'Frames delivered into the port\'s rx ring.'],
  ['rxBytes', 'wasmap_port_rx_bytes_total', 'Bytes delivered into the port\'s rx ring.'],
  ['txErrors', 'wasmap_port_tx_errors_total', 'Syncs refused because the port\'s user broke its ring.'],
];
export const DROPS: [string, string][] = [['dropFull', 'rx_full'], ['dropBroken', 'rx_broken'], ['dropNoDst', 'no_destination'], ['dropLookup', 'lookup'], ['dropSize', 'too_big'], ['dropHdr', 'vnet_header_mismatch'],
  ['faultDrops', 'port_fault']]; // port_fault: delivered to a port taken down by a fault, then thrown away

export function prometheus(stats: SwitchRow[]): string {
  const out: string[] = [];
  const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  for (const [key, metric, help] of PORT_COUNTERS) {
    out.push(`# HELP ${metric} ${help}`, `# TYPE ${metric} counter`);
    for (const s of stats) for (const p of s.ports) out.push(`${metric}{switch="${esc(s.name)}",port="${esc(p.name)}",kind="${p.kind}"} ${Number(p[key] ?? 0)}`);
  }
  out.push('# HELP wasmap_port_drops_total Frames dropped, by reason.', '# TYPE wasmap_port_drops_total counter');
  for (const s of stats) for (const p of s.ports) for (const [key, reason] of DROPS) out.push(`wasmap_port_drops_total{switch="${esc(s.name)}",port="${esc(p.name)}",reason="${reason}"} ${Number(p[key] ?? 0)}`);
  // kernel ports: what the kernel refused or dropped before the switch saw it (not in the switch's books)
  const kernel = stats.flatMap((s) => s.ports.filter((p) => p.kind === 'tap' || p.kind === 'af_packet').map((p) => ({ s, p })));
  if (kernel.length) {
    out.push('# HELP wasmap_port_kernel_drops_total Frames lost at the kernel side: refused on write, too long for the slots, or (af_packet) dropped by the kernel with the rx ring full.', '# TYPE wasmap_port_kernel_drops_total counter');
    for (const { s, p } of kernel) out.push(`wasmap_port_kernel_drops_total{switch="${esc(s.name)}",port="${esc(p.name)}",kind="${p.kind}"} ${Number(p.kernelDrops ?? 0)}`);
    const ring = kernel.filter(({ p }) => p.kind === 'af_packet');
    if (ring.length) {
      out.push('# HELP wasmap_port_ring_overruns_total Frames the kernel dropped because the AF_PACKET rx ring was full (PACKET_STATISTICS); part of wasmap_port_kernel_drops_total.', '# TYPE wasmap_port_ring_overruns_total counter');
      for (const { s, p } of ring) out.push(`wasmap_port_ring_overruns_total{switch="${esc(s.name)}",port="${esc(p.name)}"} ${Number(p.ringOverruns ?? 0)}`);
    }
  }
  out.push('# HELP wasmap_port_up 1 while the port\'s kernel endpoint works.', '# TYPE wasmap_port_up gauge');
  for (const s of stats) for (const p of s.ports) out.push(`wasmap_port_up{switch="${esc(s.name)}",port="${esc(p.name)}"} ${p.down ? 0 : 1}`);
  out.push('# HELP wasmap_switch_rounds_total Forwarding rounds run.', '# TYPE wasmap_switch_rounds_total counter');
  for (const s of stats) out.push(`wasmap_switch_rounds_total{switch="${esc(s.name)}"} ${s.rounds}`);
  out.push('# HELP wasmap_switch_poll_mode 1 for the way the forwarding thread waits for work (wasmap switch --poll).', '# TYPE wasmap_switch_poll_mode gauge');
  for (const s of stats) if (s.poll) for (const m of ['busy', 'adaptive', 'sleep']) out.push(`wasmap_switch_poll_mode{switch="${esc(s.name)}",mode="${m}"} ${s.poll === m ? 1 : 0}`);
  out.push('# HELP wasmap_forwarder_cpu_seconds_total CPU time (user + system) of the forwarding thread.', '# TYPE wasmap_forwarder_cpu_seconds_total counter');
  for (const s of stats) if (s.forwarder && s.forwarder.cpuMs >= 0) out.push(`wasmap_forwarder_cpu_seconds_total{switch="${esc(s.name)}"} ${s.forwarder.cpuMs / 1000}`);
  out.push('# HELP wasmap_switch_flood_copies_total Copies made by flooding beyond the first.', '# TYPE wasmap_switch_flood_copies_total counter');
  for (const s of stats) out.push(`wasmap_switch_flood_copies_total{switch="${esc(s.name)}"} ${s.floodExtra}`);
  // vhost-user ports: what each virtqueue moved and dropped, and the guest's notifications
  const vhost = stats.flatMap((s) => s.ports.filter((p) => p.kind === 'vhost-user' && p.queues).map((p) => ({ s, p, q: p.queues as Record<'rx' | 'tx', Record<string, number>> })));
  if (vhost.length) {
    const per: [string, string, string][] = [
      ['frames', 'wasmap_vhost_queue_frames_total', 'Frames moved through the virtqueue (tx: from the guest, rx: to the guest).'],
      ['bytes', 'wasmap_vhost_queue_bytes_total', 'Their bytes, without the virtio-net header.'],
      ['dropBig', 'wasmap_vhost_queue_drop_too_big_total', 'Frames dropped: larger than the port or the guest\'s buffers can take.'],
      ['dropBad', 'wasmap_vhost_queue_drop_bad_total', 'Frames dropped: shorter than the virtio-net header, or bad slots.'],
      ['stalls', 'wasmap_vhost_queue_stalls_total', 'Times a frame waited for the guest to post RX buffers.'],
      ['kicks', 'wasmap_vhost_queue_kicks_total', 'Kicks (eventfd wake-ups) the guest sent.'],
      ['calls', 'wasmap_vhost_queue_calls_total', 'Interrupts the switch asked for.'],
    ];
    for (const [key, metric, help] of per) {
      out.push(`# HELP ${metric} ${help}`, `# TYPE ${metric} counter`);
      for (const { s, p, q } of vhost) for (const d of ['rx', 'tx'] as const) out.push(`${metric}{switch="${esc(s.name)}",port="${esc(p.name)}",queue="${d}"} ${Number(q[d][key] ?? 0)}`);
    }
    out.push('# HELP wasmap_vhost_connected 1 while QEMU is connected to the port\'s socket.', '# TYPE wasmap_vhost_connected gauge');
    for (const { s, p } of vhost) out.push(`wasmap_vhost_connected{switch="${esc(s.name)}",port="${esc(p.name)}"} ${p.connected ? 1 : 0}`);
    out.push('# HELP wasmap_vhost_down_drops_total Frames for the port discarded while no guest could take them.', '# TYPE wasmap_vhost_down_drops_total counter');
    for (const { s, p } of vhost) out.push(`wasmap_vhost_down_drops_total{switch="${esc(s.name)}",port="${esc(p.name)}"} ${Number(p.downDrops ?? 0)}`);
    out.push('# HELP wasmap_vhost_refused_total What a front-end tried to make the switch hold, refused (each ends its session): fds, bytes of a partial message, guest memory that shrank.', '# TYPE wasmap_vhost_refused_total counter');
    for (const { s, p } of vhost) {
      const r = (p.refused ?? {}) as Record<string, number>;
      for (const [key, what] of [['fds', 'fds'], ['bytes', 'bytes'], ['memoryFaults', 'memory_faults']]) out.push(`wasmap_vhost_refused_total{switch="${esc(s.name)}",port="${esc(p.name)}",what="${what}"} ${Number(r[key] ?? 0)}`);
    }
  }
  // tunnel ports (vxlan, geneve): both directions, flooding, fdb, drops by reason; the socket's
  // own drops (before a VNI is known) once per LOCAL_IP:PORT
  type TunnelRow = { rxFrames: number; rxBytes: number; txFrames: number; txBytes: number; txDatagrams: number; flooded: number; drops: Record<string, number>; socket: { drops: Record<string, number> } };
  const tun = stats.flatMap((s) => s.ports.filter((p) => (p.kind === 'vxlan' || p.kind === 'geneve') && p.tunnel).map((p) => ({ s, p, t: p.tunnel as TunnelRow })));
  if (tun.length) {
    const l = (s: SwitchRow, p: PortRow) => `switch="${esc(s.name)}",port="${esc(p.name)}",kind="${p.kind}",vni="${Number(p.vni)}"`;
    out.push('# HELP wasmap_tunnel_frames_total Inner frames through the tunnel port (rx: decapsulated from the underlay, tx: encapsulated to it).', '# TYPE wasmap_tunnel_frames_total counter');
    for (const { s, p, t } of tun) out.push(`wasmap_tunnel_frames_total{${l(s, p)},dir="rx"} ${t.rxFrames}`, `wasmap_tunnel_frames_total{${l(s, p)},dir="tx"} ${t.txFrames}`);
    out.push('# HELP wasmap_tunnel_bytes_total Inner bytes through the tunnel port.', '# TYPE wasmap_tunnel_bytes_total counter');
    for (const { s, p, t } of tun) out.push(`wasmap_tunnel_bytes_total{${l(s, p)},dir="rx"} ${t.rxBytes}`, `wasmap_tunnel_bytes_total{${l(s, p)},dir="tx"} ${t.txBytes}`);
    out.push('# HELP wasmap_tunnel_datagrams_sent_total Underlay datagrams built (segments times remotes).', '# TYPE wasmap_tunnel_datagrams_sent_total counter');
    for (const { s, p, t } of tun) out.push(`wasmap_tunnel_datagrams_sent_total{${l(s, p)}} ${t.txDatagrams}`);
    out.push('# HELP wasmap_tunnel_flooded_total Frames sent to every remote (unknown, broadcast or multicast inner destination).', '# TYPE wasmap_tunnel_flooded_total counter');
    for (const { s, p, t } of tun) out.push(`wasmap_tunnel_flooded_total{${l(s, p)}} ${t.flooded}`);
    out.push('# HELP wasmap_tunnel_remotes Remote VTEPs in the flood list.', '# TYPE wasmap_tunnel_remotes gauge');
    for (const { s, p } of tun) out.push(`wasmap_tunnel_remotes{${l(s, p)}} ${(p.remotes as unknown[] | undefined)?.length ?? 0}`);
    out.push('# HELP wasmap_tunnel_fdb_entries Live fdb entries (inner MAC -> remote VTEP).', '# TYPE wasmap_tunnel_fdb_entries gauge');
    for (const { s, p } of tun) out.push(`wasmap_tunnel_fdb_entries{${l(s, p)},type="learned"} ${Number(p.learned ?? 0)}`, `wasmap_tunnel_fdb_entries{${l(s, p)},type="static"} ${Number(p.staticEntries ?? 0)}`);
    out.push('# HELP wasmap_tunnel_drops_total Frames or datagrams the tunnel port dropped, by reason.', '# TYPE wasmap_tunnel_drops_total counter');
    for (const { s, p, t } of tun) for (const [reason, n] of Object.entries(t.drops)) out.push(`wasmap_tunnel_drops_total{${l(s, p)},reason="${reason}"} ${n}`);
    out.push('# HELP wasmap_tunnel_socket_drops_total Datagrams dropped at a tunnel socket before a VNI port took them, by reason.', '# TYPE wasmap_tunnel_socket_drops_total counter');
    const seen = new Set<string>();
    for (const { p, t } of tun) {
      const local = String(p.local ?? '');
      if (seen.has(local)) continue;
      seen.add(local);
      for (const [reason, n] of Object.entries(t.socket.drops)) out.push(`wasmap_tunnel_socket_drops_total{local="${esc(local)}",kind="${p.kind}",reason="${reason}"} ${n}`);
    }
  }
  // forwarding functions: which lookup decides, the function's health and its own counters
  out.push('# HELP wasmap_switch_lookup 1 for the lookup deciding this switch\'s frames (learning, function or drop).', '# TYPE wasmap_switch_lookup gauge');
  for (const s of stats) for (const m of ['learning', 'function', 'drop']) out.push(`wasmap_switch_lookup{switch="${esc(s.name)}",mode="${m}"} ${s.lookup?.mode === m ? 1 : 0}`);
  const fns = stats.filter((s) => s.lookup?.function);
  if (fns.length) {
    out.push('# HELP wasmap_fn_active 1 while the switch\'s forwarding function runs, 0 once a fault disabled it.', '# TYPE wasmap_fn_active gauge');
    for (const s of fns) out.push(`wasmap_fn_active{switch="${esc(s.name)}",function="${esc(s.lookup!.function!.name)}"} ${s.lookup!.function!.state === 'active' ? 1 : 0}`);
    out.push('# HELP wasmap_fn_frames_total Frames the forwarding function decided.', '# TYPE wasmap_fn_frames_total counter');
    for (const s of fns) out.push(`wasmap_fn_frames_total{switch="${esc(s.name)}",function="${esc(s.lookup!.function!.name)}"} ${s.lookup!.function!.frames}`);
    out.push('# HELP wasmap_fn_fault_drops_total Frames dropped with the batch on which the function failed.', '# TYPE wasmap_fn_fault_drops_total counter');
    for (const s of fns) out.push(`wasmap_fn_fault_drops_total{switch="${esc(s.name)}",function="${esc(s.lookup!.function!.name)}"} ${s.lookup!.function!.faultDrops}`);
    out.push('# HELP wasmap_fn_counter The forwarding function\'s own counters (wasmap_fn_counters).', '# TYPE wasmap_fn_counter untyped');
    for (const s of fns) for (const [k, v] of Object.entries(s.lookup!.function!.counters)) out.push(`wasmap_fn_counter{switch="${esc(s.name)}",function="${esc(s.lookup!.function!.name)}",name="${esc(k)}"} ${v}`);
  }
  return out.join('\n') + '\n';
}
