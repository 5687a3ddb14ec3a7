// Whole traffic loops in one call, so a benchmark or the demo crosses from JavaScript into
// wasm once per thousands of packets: generators fill, the switch (or a pipe) forwards,
// sinks drain.
import { gen_tx, gen_rx } from './gen';
import { sw_round } from './switch/forward';
import { pipe_txsync, rxsync } from './pipe';

// plan layout: u32 sw, u32 ngen, u32 nsink, u32 pad; then ngen x {gen, tx kring, burst, 0};
// then nsink x {gen, rx kring, 0, 0}
export const PLAN_MAX: u32 = 254;
export function plan_size(): u32 { return 16 + 16 * 2 * PLAN_MAX; }

/** Run `rounds` rounds: every generator fills (up to its burst), the switch forwards, every
 *  sink drains. Returns frames the sinks received. */
export function traffic_run(plan: usize, rounds: u32, now: u32): u64 {
  const sw = <usize>load<u32>(plan);
  const ngen = load<u32>(plan, 4);
  const nsink = load<u32>(plan, 8);
  const gens = plan + 16;
  const sinks = gens + 16 * <usize>ngen;
  let got: u64 = 0;
  for (let r: u32 = 0; r < rounds; r++) {
    for (let i: u32 = 0; i < ngen; i++) {
      const e = gens + 16 * <usize>i;
      gen_tx(<usize>load<u32>(e), <usize>load<u32>(e, 4), load<u32>(e, 8));
    }
    sw_round(sw, now);
    for (let i: u32 = 0; i < nsink; i++) {
      const e = sinks + 16 * <usize>i;
      got += gen_rx(<usize>load<u32>(e), <usize>load<u32>(e, 4));
    }
  }
  return got;
}

/** The same through a pipe: fill, txsync, rxsync, drain. Returns frames received. */
export function pipe_run(g: usize, tx: usize, sink: usize, rx: usize, burst: u32, rounds: u32): u64 {
  let got: u64 = 0;
  for (let r: u32 = 0; r < rounds; r++) {
    gen_tx(g, tx, burst);
    pipe_txsync(tx);
    rxsync(rx);
    got += gen_rx(sink, rx);
  }
  return got;
}
