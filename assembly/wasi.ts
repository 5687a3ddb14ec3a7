// The datapath as a WASI command (build/wasmap-wasi.wasm): `_start` builds a VALE switch with
// four ports in its own memory, runs pkt-gen traffic through it, checks that every frame is
// accounted for and that no buffer was lost, prints what it did, and exits 0 (1 if a check
// fails). It shows the module needs nothing from a host but memory and a way to print.
import {
  PORT_SIZE, P_TX_PKTS, P_RX_PKTS, P_DROP_FULL, P_DROP_BROKEN, P_DROP_NODST, P_DROP_LOOKUP,
  P_DROP_SIZE, P_DROP_HDR, SW_PORTS, SW_FLOOD_EXTRA, SW_SEG_EXTRA, G_TEMPLATE, DIR_TX, DIR_RX,
} from './abi';
import { region_span_size, region_priv_size, region_init, region_kring, pool_free_count } from './region';
import { region_repair } from './repair';
import { sw_priv_size, sw_init, sw_attach } from './switch/forward';
import { gen_size, gen_init, gen_tx } from './gen';
import { plan_size, traffic_run } from './loop';

// This command has no host to run forwarding functions: the switch is built without the import.
// @ts-ignore: decorator
@global const WASMAP_NO_FN: bool = true;

function span(bytes: usize, align: usize): usize { return (heap.alloc(bytes + align) + align - 1) & ~(align - 1); }

function run(): i32 {
  const NPORTS: u32 = 4, SLOTS: u32 = 256, ROUNDS: u32 = 20000;
  const sw = span(sw_priv_size(), 64);
  sw_init(sw);
  const descs = span(4 * NPORTS, 4);
  const plan = span(plan_size(), 64);
  store<u32>(plan, <u32>sw); store<u32>(plan, NPORTS, 4); store<u32>(plan, NPORTS, 8);
  for (let i: u32 = 0; i < NPORTS; i++) {
    const size = region_span_size(1, 1, SLOTS, 2048, 0);
    const desc = span(region_priv_size(1, 1, SLOTS, 0), 64);
    if (region_init(desc, span(size, 65536), size, 1, 1, SLOTS, 2048, 0) != 0) return fail('region_init');
    store<u32>(descs + 4 * i, <u32>desc);
    const tx = region_kring(desc, DIR_TX, 0), rx = region_kring(desc, DIR_RX, 0);
    if (sw_attach(sw, tx, rx) != <i32>i) return fail('sw_attach');
    // generator i sends to port i ^ 1 (MACs 02:00:00:00:00:0N)
    const g = span(gen_size(), 64), t = g + G_TEMPLATE;
    store<u8>(t, 2); store<u8>(t + 5, <u8>((i ^ 1) + 1)); store<u8>(t + 6, 2); store<u8>(t + 11, <u8>(i + 1));
    if (gen_init(g, 60, 0x0a000001 + i, 0x0a000001 + i, 0x0a000001 + (i ^ 1), 0x0a000001 + (i ^ 1), 1234, 1240, 1234, 1234) != 0) return fail('gen_init');
    const e = plan + 16 + 16 * i;
    store<u32>(e, <u32>g); store<u32>(e, <u32>tx, 4); store<u32>(e, 128, 8);
    const sink = span(gen_size(), 64);
    const se = plan + 16 + 16 * NPORTS + 16 * i;
    store<u32>(se, <u32>sink); store<u32>(se, <u32>rx, 4);
  }
  const t0 = performance.now();
  const got = traffic_run(plan, ROUNDS, 1);
  const ms = performance.now() - t0;
  for (let i: u32 = 0; i < NPORTS; i++) store<u64>(<usize>load<u32>(plan + 16 + 16 * i), 0, 64); // budgets 0
  traffic_run(plan, 4, 1);
  let sent: u64 = 0, received: u64 = 0, drops: u64 = 0;
  const ports = <usize>load<u32>(sw, SW_PORTS);
  for (let i: u32 = 0; i < NPORTS; i++) {
    const p = ports + <usize>PORT_SIZE * i;
    sent += load<u64>(p, P_TX_PKTS);
    received += load<u64>(p, P_RX_PKTS);
    drops += load<u64>(p, P_DROP_FULL) + load<u64>(p, P_DROP_BROKEN) + load<u64>(p, P_DROP_NODST) + load<u64>(p, P_DROP_LOOKUP) + load<u64>(p, P_DROP_SIZE) + load<u64>(p, P_DROP_HDR);
  }
  const extra = load<u64>(sw, SW_FLOOD_EXTRA) + load<u64>(sw, SW_SEG_EXTRA);
  console.log(`wasmap (WASI): switch with ${NPORTS} ports, ${ROUNDS} rounds in ${Math.round(ms).toString()} ms: ${got.toString()} frames to the sinks (${(<f64>got / ms / 1000).toString().slice(0, 6)} Mpps)`);
  console.log(`sent ${sent.toString()} + flood copies ${extra.toString()} = received ${received.toString()} + drops ${drops.toString()}`);
  if (sent + extra != received + drops) return fail('conservation');
  if (got == 0) return fail('no traffic');
  for (let i: u32 = 0; i < NPORTS; i++) {
    const desc = <usize>load<u32>(descs + 4 * i);
    const before = pool_free_count(desc);
    if (region_repair(desc, 0) != 0 || pool_free_count(desc) != before) return fail('buffer audit');
  }
  console.log('ok: every frame accounted for, every buffer in its place');
  return 0;
}

function fail(what: string): i32 { console.log(`FAILED: ${what}`); return 1; }

// the top level is the command's _start (the WASI shim exports it)
const rc = run();
if (rc != 0) process.exit(rc);
