// `wasmap pkt-gen`: netmap's pkt-gen on wasmap ports, with its flags and its report lines.
import { parseArgs } from 'node:util';
import { Datapath } from '../datapath.js';
import { Switch, conservation } from '../switch.js';
import { Pipe } from '../pipe.js';
import { Generator, TrafficPlan } from '../gen.js';
import { parsePortName } from '../portname.js';
import { WasmapError } from '../errors.js';
import { pace } from './pace.js';
import { norm } from './format.js';
import { PtGuest } from '../guest.js';

interface GuestRun { slots?: number; len: number; count?: number; rate?: number; seconds: number; interval: number; spinUs: number; json: boolean; gen: ConstructorParameters<typeof Generator>[1] }

// pkt-gen as a passthrough guest: this process owns the port's rings; the switch runs elsewhere
async function guest(socket: string, port: string, fn: string, o: GuestRun): Promise<number> {
  if (fn !== 'tx' && fn !== 'rx') throw new WasmapError('EINVAL', `-f ${fn}: a passthrough guest sends (tx) or receives (rx)`);
  const g = PtGuest.connect(socket, port, { slots: o.slots });
  try {
    const gen = new Generator(g.dp, fn === 'tx' ? o.gen : {});
    const frames = () => (fn === 'tx' ? gen.txPackets : gen.rxPackets);
    const bytes = () => (fn === 'tx' ? gen.txBytes : gen.rxBytes);
    if (!o.json) console.log(`${fn === 'tx' ? 'Sending on' : 'Receiving on'} ${port} (passthrough guest of ${socket})${fn === 'tx' ? `: ${o.len}-byte frames` : ''}`);
    const start = performance.now();
    let lastN = 0n, lastT = 0;
    const { elapsedMs } = await pace({
      seconds: o.seconds, interval: o.interval,
      run: () => {
        const end = performance.now() + 25, before = frames();
        if (fn === 'tx' && o.rate) gen.budget = Math.max(0, Math.min(Math.floor(o.rate * (end - start) / 1000), o.count ?? Infinity) - Number(gen.txPackets));
        const stop = () => performance.now() >= end || (o.count !== undefined && frames() >= BigInt(o.count));
        if (fn === 'tx') g.pumpTx(gen, stop, o.spinUs); else g.pumpRx(gen, stop, o.spinUs);
        return Number(frames() - before);
      },
      report: (t) => {
        const n = frames(), dt = (t - lastT) / 1000;
        if (!o.json) console.log(`${(t / 1000).toFixed(3).padStart(9)} ${norm(Number(n - lastN) / dt, 'pps').padStart(12)} (${n - lastN} pkts in ${Math.round(dt * 1e6)} usec)  kicks sent ${g.kicksSent} received ${g.kicksReceived}`);
        const e = g.errors;
        if (e.tx || e.rx) throw new WasmapError('EBROKEN', `the switch reports this port broken (tx ${e.tx}, rx ${e.rx}): this guest wrote something invalid into its rings or CSB`);
        lastN = n; lastT = t;
      },
      done: () => o.count !== undefined && frames() >= BigInt(o.count),
    });
    if (fn === 'tx') { gen.budget = 0; g.txsync(); }
    const secs = elapsedMs / 1000, n = frames();
    const summary = { fn, port, packets: Number(n), bytes: Number(bytes()), seconds: secs, pps: Number(n) / secs,
      kicksSent: g.kicksSent, kicksReceived: g.kicksReceived, sleeps: g.sleeps, sleptMs: Math.round(g.sleptMs), timeouts: g.timeouts, errors: g.errors };
    if (o.json) console.log(JSON.stringify(summary));
    else {
      console.log(`${fn === 'tx' ? 'Sent' : 'Received'} ${n} packets ${bytes()} bytes in ${secs.toFixed(2)} seconds.`);
      console.log(`Speed: ${norm(Number(n) / secs, 'pps')}; kicks sent ${g.kicksSent} (${(g.kicksSent / Math.max(1, Number(n))).toExponential(2)} per packet), received ${g.kicksReceived}; slept ${g.sleeps} times (${Math.round(g.sleptMs)} ms, ${g.timeouts} without a kick)`);
    }
    return 0;
  } finally {
    g.close();
  }
}

export const PKTGEN_HELP = `wasmap pkt-gen — generate and count packets on wasmap ports (netmap pkt-gen's flags)

Usage: wasmap pkt-gen -i PORT [-i PORT2] [-f tx|txrx] [options]
       wasmap pkt-gen -i valeX:NAME --socket PATH -f tx|rx [options]

As a passthrough guest of a running switch daemon (\`wasmap switch valeX --socket PATH\`):
  --socket PATH  open valeX:NAME (a new port) of that daemon and drive its rings from this
                 process through shared memory and a CSB; the port goes away when pkt-gen exits
  -f tx|rx       send, or receive and count
  --spin-us N    busy-poll this long before sleeping until the switch kicks (default 0:
                 on a machine with few cores a spinning guest takes the CPU the switch needs)
  --slots N      slots per ring of the new port (default 1024; more absorbs scheduling gaps)
  --json         print a JSON summary at the end (packets, kicks sent/received, sleeps)

Ports (in this process):
  -i valeX:NAME [-i valeX:NAME2]  send on the first port of a VALE switch; with a second port,
                                  receive there (-f txrx). A lone port sends into a switch with
                                  nobody else on it: every frame is dropped and counted.
  -i NAME{ID                      a zero-copy pipe: send on the '{' end, receive on the '}' end

Options:
  -f tx|txrx     function (default: txrx with two ports or a pipe, tx with one port)
  -l BYTES       frame length without CRC, 42..2048 (default 60)
  -n COUNT       frames to send (default: until --seconds or Ctrl-C)
  -R PPS         rate limit in frames per second (default: as fast as possible)
  -b BURST       frames per ring fill (default 512)
  -S MAC  -D MAC source / destination MAC (default 02:00:00:00:00:01 -> ff:ff:ff:ff:ff:ff)
  -s IP[-IP][:PORT[-PORT]]   source addresses, a range varies per frame (default 10.0.0.1:1234)
  -d IP[-IP][:PORT[-PORT]]   destination addresses (default 10.1.0.1:1234)
  -r             rubbish: do not write frames into buffers, only set lengths (ring speed)
  -T MS          report interval in milliseconds (default 1000)
  --seconds N    stop after N seconds (default 5 when no -n)
Frames are UDP over IPv4 with valid IP and UDP checksums.
`;

export async function pktgen(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: {
    i: { type: 'string', multiple: true }, f: { type: 'string' }, l: { type: 'string', default: '60' }, n: { type: 'string' },
    R: { type: 'string' }, b: { type: 'string', default: '512' }, S: { type: 'string' }, D: { type: 'string' },
    s: { type: 'string' }, d: { type: 'string' }, T: { type: 'string', default: '1000' }, seconds: { type: 'string' },
    r: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' },
    socket: { type: 'string' }, 'spin-us': { type: 'string' }, slots: { type: 'string' }, json: { type: 'boolean', default: false } } });
  if (values.help) { process.stdout.write(PKTGEN_HELP); return 0; }
  const ifs = values.i ?? [];
  if (ifs.length === 0 || ifs.length > 2) throw new WasmapError('EINVAL', 'give one or two ports with -i (see wasmap pkt-gen --help)');
  const num = (v: string | undefined, name: string, lo: number, hi: number, dflt: number) => {
    if (v === undefined) return dflt;
    const x = Number(v);
    if (!Number.isFinite(x) || x < lo || x > hi) throw new WasmapError('EINVAL', `${name} must be ${lo}..${hi}, not '${v}'`);
    return x;
  };
  const len = num(values.l, '-l', 42, 2048, 60), burst = num(values.b, '-b', 1, 1024, 512), interval = num(values.T, '-T', 10, 3600000, 1000);
  const count = values.n !== undefined ? num(values.n, '-n', 1, Number.MAX_SAFE_INTEGER, 0) : undefined;
  const rate = values.R !== undefined ? num(values.R, '-R', 1, 1e12, 0) : undefined;
  const seconds = num(values.seconds, '--seconds', 0.001, 1e9, count !== undefined ? Infinity : 5);

  if (values.socket !== undefined) {
    if (ifs.length !== 1) throw new WasmapError('EINVAL', 'a passthrough guest opens one port: -i valeX:NAME --socket PATH');
    return guest(values.socket, ifs[0], values.f ?? 'tx', { len, count, rate, seconds, interval, spinUs: num(values['spin-us'], '--spin-us', 0, 1e7, 0), slots: values.slots === undefined ? undefined : num(values.slots, '--slots', 64, 4096, 1024),
      json: values.json, gen: { len, srcMac: values.S, dstMac: values.D, src: values.s, dst: values.d, count, rubbish: values.r } });
  }
  const dp = new Datapath();
  // like pkt-gen, a bare name means netmap:NAME (so pipe{1 is netmap:pipe{1)
  const specs = ifs.map((s) => parsePortName(s.includes(':') ? s : `netmap:${s}`));
  const gen = new Generator(dp, { len, srcMac: values.S, dstMac: values.D, src: values.s, dst: values.d, count, rubbish: values.r });
  const sink = new Generator(dp);
  let run: (rounds: number) => number;
  let finish: () => { sent: bigint; received: bigint; drops: bigint };
  let fn = values.f;
  const first = specs[0];
  if (first.kind === 'netmap' && first.pipe) {
    if (specs.length > 1) throw new WasmapError('EINVAL', 'a pipe is one -i: NAME{ID sends on the { end and receives on the } end');
    fn ??= 'txrx';
    const pipe = new Pipe(dp, { slots: 1024, name: first.name });
    const tx = pipe.master.tx.kring, rx = pipe.slave.rx.kring;
    run = (rounds) => Number(dp.fn.pipe_run(gen.g, tx, sink.g, rx, burst, rounds));
    finish = () => { gen.budget = 0; dp.fn.pipe_run(gen.g, tx, sink.g, rx, burst, 4); return { sent: gen.txPackets, received: sink.rxPackets, drops: 0n }; };
  } else {
    for (const s of specs) {
      if (s.kind !== 'vale' || !s.port) throw new WasmapError('EINVAL', `pkt-gen runs on VALE ports (valeX:NAME) or pipes (NAME{ID) in this process; '${s.name}' is a ${s.kind} port`);
    }
    const swName = (specs[0] as { switchName?: string }).switchName ?? 'vale0';
    if (specs.some((s) => (s as { switchName?: string }).switchName !== swName)) throw new WasmapError('EINVAL', 'both ports must be on one switch');
    fn ??= specs.length === 2 ? 'txrx' : 'tx';
    if (fn === 'txrx' && specs.length !== 2) throw new WasmapError('EINVAL', '-f txrx needs a second port: -i valeX:a -i valeX:b');
    if (fn === 'rx') throw new WasmapError('EINVAL', '-f rx needs a sender on a running switch daemon (wasmap switch, coming with the real-ports work); use -f txrx -i vale0:a -i vale0:b');
    const sw = new Switch(dp, swName);
    const ports = specs.map((s) => sw.attach((s as { port: string }).port));
    const plan = new TrafficPlan(dp, sw.sw, [{ gen, kring: ports[0].tx.kring, burst }], fn === 'txrx' && ports[1] ? [{ gen: sink, kring: ports[1].rx.kring }] : []);
    run = (rounds) => plan.run(rounds);
    finish = () => { gen.budget = 0; plan.run(4); const law = conservation(sw.stats()); return { sent: law.sent, received: law.received, drops: law.drops }; };
  }
  if (fn !== 'tx' && fn !== 'txrx') throw new WasmapError('EINVAL', `-f ${fn}: this version supports tx and txrx`);

  console.log(`Sending on ${ifs.join(' -> ')}: ${len}-byte frames, burst ${burst}${rate ? `, rate ${norm(rate, 'pps')}` : ''}${count ? `, ${count} frames` : ''}`);
  const start = performance.now();
  let lastTx = 0n, lastRx = 0n, lastT = 0;
  const limited = count !== undefined;
  const { elapsedMs } = await pace({
    seconds, interval,
    run: (rounds) => {
      if (rate) { // token bucket: the generator may send what the rate allows by now
        const allowed = BigInt(Math.floor(rate * (performance.now() - start) / 1000));
        const left = limited ? BigInt(count) - gen.txPackets : allowed;
        gen.budget = Number(allowed - gen.txPackets < left ? allowed - gen.txPackets : left);
      }
      return run(rate ? Math.max(1, Math.min(rounds, Math.ceil(rate / burst / 200))) : rounds);
    },
    report: (t) => {
      const tx = gen.txPackets, rx = sink.rxPackets, dt = (t - lastT) / 1000;
      const pps = Number(tx - lastTx) / dt;
      console.log(`${(t / 1000).toFixed(3).padStart(9)} ${norm(pps, 'pps').padStart(12)} (${tx - lastTx} pkts ${norm(pps * len * 8, 'bps')} in ${Math.round(dt * 1e6)} usec)` +
        (fn === 'txrx' ? `  rx ${norm(Number(rx - lastRx) / dt, 'pps')}` : ''));
      lastTx = tx; lastRx = rx; lastT = t;
    },
    done: () => limited && gen.txPackets >= BigInt(count),
  });
  const r = finish();
  const secs = elapsedMs / 1000;
  console.log(`Sent ${gen.txPackets} packets ${gen.txBytes} bytes ${len} bytes each in ${secs.toFixed(2)} seconds.`);
  console.log(`Speed: ${norm(Number(gen.txPackets) / secs, 'pps')} Bandwidth: ${norm(Number(gen.txBytes) * 8 / secs, 'bps')}`);
  if (fn === 'txrx') console.log(`Received ${sink.rxPackets} packets ${sink.rxBytes} bytes in ${secs.toFixed(2)} seconds (${norm(Number(sink.rxPackets) / secs, 'pps')}).`);
  console.log(`Through the ${first.kind === 'netmap' ? 'pipe' : 'switch'}: sent ${r.sent}, received ${r.received}, dropped ${r.drops} (every drop counted)`);
  return 0;
}
