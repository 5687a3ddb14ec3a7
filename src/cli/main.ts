// The `wasmap` command: one entry point, one subcommand per job.
import { demo, DEMO_HELP } from './demo.js';
import { bench, BENCH_HELP } from './bench.js';
import { pktgen, PKTGEN_HELP } from './pktgen.js';
import { switchd, SWITCH_HELP } from './switchd.js';
import { ctl, CTL_HELP } from './ctl.js';
import { capture, CAPTURE_HELP } from './capture.js';
import { top, TOP_HELP } from './top.js';
import { WasmapError } from '../errors.js';
import { loadHost, hostMissingReason } from '../host.js';

const HELP = `wasmap — netmap-style packet I/O and the VALE switch, as a WebAssembly datapath

Usage: wasmap <command> [options]      (wasmap <command> --help for its options)

Commands:
  demo       a VALE switch with four ports and live traffic; accounts for every frame
  bench      packet rates of the datapath next to a native C build of the same switch
  pkt-gen    netmap's pkt-gen on wasmap ports (VALE ports and pipes)
  switch     run a switch daemon: TAP and AF_PACKET ports, forwarding in a worker thread
  ctl        control a running switch daemon (attach, detach, list, stats, newif, delif)
  capture    mirror a port of a running switch into a pcap file
  top        a live view of a running switch: per-port rates and drops per second
  doctor     what this machine offers wasmap (native host, privileges)
  help       this text

The datapath is build/wasmap.wasm (AssemblyScript); the native host build/wasmap_host.node
maps file descriptors into its memory. Build both with \`npm run build\`.
`;

async function doctor(): Promise<number> {
  const host = loadHost();
  console.log(`node ${process.version} (${process.platform}/${process.arch})`);
  console.log(host ? `native host: loaded (${host.version()}, page size ${host.pageSize()})` : `native host: missing — ${hostMissingReason()}`);
  console.log(`running as ${process.getuid?.() === 0 ? 'root (TAP, AF_PACKET, namespaces available)' : 'a normal user (TAP and AF_PACKET ports need root or CAP_NET_ADMIN)'}`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'demo': return demo(rest);
    case 'bench': return bench(rest);
    case 'pkt-gen': case 'pktgen': return pktgen(rest);
    case 'switch': return switchd(rest);
    case 'ctl': return ctl(rest);
    case 'capture': return capture(rest);
    case 'top': return top(rest);
    case 'doctor': return doctor();
    case undefined: case 'help': case '--help': case '-h':
      process.stdout.write(HELP);
      if (rest[0] === 'demo') process.stdout.write('\n' + DEMO_HELP);
      if (rest[0] === 'bench') process.stdout.write('\n' + BENCH_HELP);
      if (rest[0] === 'pkt-gen') process.stdout.write('\n' + PKTGEN_HELP);
      if (rest[0] === 'switch') process.stdout.write('\n' + SWITCH_HELP);
      if (rest[0] === 'ctl') process.stdout.write('\n' + CTL_HELP);
      if (rest[0] === 'capture') process.stdout.write('\n' + CAPTURE_HELP);
      if (rest[0] === 'top') process.stdout.write('\n' + TOP_HELP);
      return 0;
    default:
      throw new WasmapError('EINVAL', `unknown command '${cmd}'; commands: demo, bench, pkt-gen, switch, ctl, capture, top, doctor, help`);
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: unknown) => {
  if (err instanceof WasmapError || (err instanceof Error && err.name === 'TypeError' && 'code' in err && String((err as { code: unknown }).code).startsWith('ERR_PARSE_ARGS'))) {
    console.error(`wasmap: ${err.message}`);
    process.exitCode = 2;
  } else {
    console.error('wasmap: unexpected error:', err);
    process.exitCode = 1;
  }
});
