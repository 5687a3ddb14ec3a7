// Worker-thread entry of the switch daemon: runs the forwarding loop and answers control
// requests between passes (receiveMessageOnPort, so the loop never yields to an event loop).
// Supervised: a request's failure is its error reply (Runner.handle catches, and a reply that
// cannot be posted becomes an error reply); a failure of the loop itself is reported to the
// daemon as {fatal} with its stack, the ports are closed and the worker exits non-zero — the
// daemon then answers every request EWORKER and `wasmap switch` exits loudly. A loop that
// stops coming round (a pass or a request that never returns) is seen by the daemon's
// watchdog on the heartbeat word, with the same outcome.
import { workerData, receiveMessageOnPort, MessagePort } from 'node:worker_threads';
import { Runner, Request, Reply, PollMode } from './runner.js';

const { port, switches, spinUs, wakeFd, heartbeat, poll, ioThreads } = workerData as { port: MessagePort; switches: string[]; spinUs: number; wakeFd: number; heartbeat?: Int32Array; poll?: PollMode; ioThreads?: number };
const mode: PollMode = poll ?? 'adaptive';
// Tests only: 'throw:VERB' makes the loop throw, 'hang:VERB' makes it spin forever, when it
// receives a request with that verb (before answering it).
const [faultKind, faultVerb] = (process.env.WASMAP_TEST_LOOP_FAULT ?? '').split(':');

let runner: Runner;
try {
  runner = new Runner(switches);
  runner.poll = { mode, spinUs };
  if (ioThreads) runner.setIoThreads(ioThreads);
} catch (e) {
  port.postMessage({ ready: false, error: (e as Error).message });
  throw e;
}
port.postMessage({ ready: true });

function answer(req: Request): void {
  const reply: Reply = runner.handle(req);
  try {
    port.postMessage(reply);
  } catch (e) {
    port.postMessage({ id: req.id, ok: false, error: { code: 'EINTERNAL', message: `the reply to '${String(req.verb)}' cannot be sent: ${(e as Error).message}` } });
  }
}

let passes = 0, slept = true;
try {
  for (;;) {
    let msg;
    // requests are looked for every 16th pass while passes follow each other (~1-20 µs each),
    // and after every sleep: each look costs about as much as a whole small pass
    if (++passes >= 16 || slept) { passes = 0; slept = false; } else msg = null;
    while (passes === 0 && (msg = receiveMessageOnPort(port))) {
      const req = msg.message as Request & { ctl?: string };
      if (req.ctl === 'stop') {
        runner.close();
        port.postMessage({ id: req.id, ok: true, result: { stopped: true } });
        port.close();
        process.exit(0);
      }
      if (faultVerb && req.verb === faultVerb) {
        if (faultKind === 'hang') for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
        throw new Error(`injected loop fault (WASMAP_TEST_LOOP_FAULT=${faultKind}:${faultVerb})`);
      }
      answer({ id: req.id, verb: req.verb, args: req.args });
    }
    if (heartbeat) Atomics.add(heartbeat, 0, 1); // the daemon's watchdog sees the loop come round
    // with a wake-up fd, control requests end the sleep at once, so it can be long (~0 % CPU)
    const armed = runner.arms;
    runner.stepOrSleep(wakeFd >= 0 ? 1000 : 5, spinUs, wakeFd, mode);
    slept = runner.arms !== armed;
  }
} catch (e) {
  const err = e as Error;
  try { port.postMessage({ fatal: err.stack ?? String(err) }); } catch { /* the daemon still sees the exit */ }
  try { runner.close(); } catch { /* best effort: the process is going anyway */ }
  process.exit(70);
}
