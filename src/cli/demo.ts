// `wasmap demo`: the first thing a new user sees. A VALE switch with four in-process ports,
// generators and sinks on each, live rates, then a table that accounts for every frame.
import { parseArgs } from 'node:util';
import { Datapath } from '../datapath.js';
import { Switch, conservation } from '../switch.js';
import { Generator, TrafficPlan } from '../gen.js';
import { pace } from './pace.js';
import { c, norm, table } from './format.js';

export const DEMO_HELP = `wasmap demo — a VALE switch in WebAssembly, with four ports and live traffic

Usage: wasmap demo [--seconds N] [--len BYTES] [--json]

Creates switch vale0 with ports a, b, c and d (each its own netmap region) and runs
pkt-gen style generators and sinks on them through the switch:
  a <-> b   60-byte UDP frames both ways (unicast once the MACs are learned)
  c  -> d   d has a small 64-slot rx ring, so some frames find it full and are dropped
  d  -> c
The first frames of each flow flood (unknown destination) until the switch learns.
Prints the rate every second and, at the end, what every port sent, received and dropped;
the totals must satisfy: sent + flood copies = received + drops.

Options:
  --seconds N   how long to run (default 5; Ctrl-C stops early)
  --len BYTES   frame length, 42..2048 (default 60)
  --json        print the final counters as JSON instead of the table
`;

export async function demo(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { seconds: { type: 'string', default: '5' }, len: { type: 'string', default: '60' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) { process.stdout.write(DEMO_HELP); return 0; }
  const seconds = Number(values.seconds), len = Number(values.len);
  if (!(seconds > 0)) throw new Error(`--seconds must be a positive number, not '${values.seconds}'`);
  if (!Number.isInteger(len) || len < 42 || len > 2048) throw new Error(`--len must be 42..2048, not '${values.len}'`);

  const dp = new Datapath();
  const sw = new Switch(dp, 'vale0');
  const mac = (i: number) => `02:00:00:00:00:0${i + 1}`;
  const names = ['a', 'b', 'c', 'd'];
  const ports = names.map((n) => sw.attach(n, { slots: n === 'd' ? 64 : 1024 }));
  const peer = [1, 0, 3, 2];
  const gens = names.map((_, i) => new Generator(dp, { len, srcMac: mac(i), dstMac: mac(peer[i]), src: `10.0.0.${i + 1}:1234`, dst: `10.0.0.${peer[i] + 1}:1234` }));
  const sinks = names.map(() => new Generator(dp));
  const plan = new TrafficPlan(dp, sw.sw,
    gens.map((gen, i) => ({ gen, kring: ports[i].tx.kring, burst: i === 2 ? 256 : 512 })),
    sinks.map((gen, i) => ({ gen, kring: ports[i].rx.kring })));

  if (!values.json) {
    console.log(c.bold('wasmap demo') + c.dim(` — switch vale0, ports ${names.join(', ')}, ${len}-byte frames, ${seconds} s (Ctrl-C to stop)`));
    console.log(c.dim('  a <-> b unicast · c <-> d, d has a 64-slot rx ring (drops expected) · datapath: build/wasmap.wasm'));
  }
  let lastRx = 0n, lastT = 0;
  const rxNow = () => sinks.reduce((n, s) => n + s.rxPackets, 0n);
  const { elapsedMs, interrupted } = await pace({
    seconds, interval: 1000,
    run: (rounds) => plan.run(rounds),
    report: (t) => {
      if (values.json) return;
      const rx = rxNow(), dt = (t - lastT) / 1000, pps = Number(rx - lastRx) / dt;
      const per = sinks.map((s, i) => `${names[i]} ${norm(Number(s.rxPackets) / (t / 1000), 'pps').padStart(11)}`).join(c.dim(' │ '));
      console.log(`${(t / 1000).toFixed(1).padStart(5)} s  ${c.cyan(norm(pps, 'pps').padStart(12))}  ${norm(pps * len * 8, 'bps').padStart(12)}   ${c.dim('avg rx')} ${per}`);
      lastRx = rx; lastT = t;
    },
  });
  // let the switch finish what the generators queued so the books close
  for (const g of gens) g.budget = 0;
  plan.run(4);

  const st = sw.stats(), law = conservation(st);
  const secs = elapsedMs / 1000;
  if (values.json) {
    console.log(JSON.stringify({ seconds: secs, ports: st.ports, ...law, floodExtra: st.floodExtra }, (_, v) => (typeof v === 'bigint' ? Number(v) : v), 2));
  } else {
    if (interrupted) console.log(c.dim('(interrupted)'));
    const rows = st.ports.map((p) => [`vale0:${p.name}`, p.txPackets, p.rxPackets, p.dropFull + p.dropBroken + p.dropSize, p.dropNoDst + p.dropLookup,
      norm(Number(p.rxPackets) / secs, 'pps')]);
    rows.push(['total', law.sent, law.received, st.ports.reduce((n, p) => n + p.dropFull + p.dropBroken + p.dropSize, 0n), st.ports.reduce((n, p) => n + p.dropNoDst + p.dropLookup, 0n), norm(Number(law.received) / secs, 'pps')]);
    console.log('\n' + table(['port', 'sent', 'received', 'dropped (rx full)', 'dropped (lookup)', 'rx rate'], rows));
    const verdict = law.ok ? c.green('✔ every frame accounted for') : c.red('✘ conservation violated');
    console.log(`\n${verdict}: sent ${law.sent} + flood copies ${law.floodExtra} = received ${law.received} + drops ${law.drops}`);
    console.log(c.dim(`${st.rounds} switch rounds, ${norm(Number(law.sent) / secs, 'pps')} through the switch on one core; learned ${st.learned} MAC entries`));
  }
  sw.destroy();
  return law.ok ? 0 : 1;
}
