// Drive a wasm traffic loop from the event loop: run chunks of rounds sized to ~25 ms so the
// process stays responsive (reports, Ctrl-C) while crossing into wasm once per chunk.
export interface PaceOptions {
  seconds: number;                        // stop after this long (Infinity: until stopped)
  interval: number;                       // report every `interval` ms
  run: (rounds: number) => number;        // runs rounds in wasm, returns work done (frames)
  report: (elapsedMs: number) => void;
  done?: () => boolean;                   // stop early when true (count reached)
}

export async function pace(o: PaceOptions): Promise<{ elapsedMs: number; interrupted: boolean }> {
  let interrupted = false;
  const onSig = () => { interrupted = true; };
  process.once('SIGINT', onSig);
  const start = performance.now();
  let rounds = 64, nextReport = start + o.interval;
  try {
    while (!interrupted) {
      const t0 = performance.now();
      if (t0 - start >= o.seconds * 1000 || o.done?.()) break;
      o.run(rounds);
      const dt = performance.now() - t0;
      rounds = Math.max(1, Math.min(1 << 20, Math.round(rounds * (dt > 0 ? 25 / dt : 2))));
      if (performance.now() >= nextReport) { o.report(performance.now() - start); nextReport += o.interval; }
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    process.removeListener('SIGINT', onSig);
  }
  return { elapsedMs: performance.now() - start, interrupted };
}
