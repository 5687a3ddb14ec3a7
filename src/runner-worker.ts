// Worker-thread entry of the switch daemon: runs the forwarding loop and answers control
// requests between passes (receiveMessageOnPort, so the loop never yields to an event loop).
// Supervised: a request's failure is its error reply (Runner.handle catches, and a reply that
// cannot be posted becomes an error reply); a failure of the loop itself is reported to the
// daemon as {fatal} with its stack, the ports are closed and the worker exits non-zero — the
// daemon then answers every request EWORKER and `wasmap switch` exits loudly.
import { workerData, receiveMessageOnPort, MessagePort } from 'node:worker_threads';
import { Runner, Request, Reply } from './runner.js';

const { port, switches, spinUs, wakeFd } = workerData as { port: MessagePort; switches: string[]; spinUs: number; wakeFd: number };
// Tests only: the loop throws when it receives a request with this verb (before answering it).
const injectFault = process.env.WASMAP_TEST_LOOP_FAULT;

let runner: Runner;
try {
  runner = new Runner(switches);
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

try {
  for (;;) {
    let msg;
    while ((msg = receiveMessageOnPort(port))) {
      const req = msg.message as Request & { ctl?: string };
      if (req.ctl === 'stop') {
        runner.close();
        port.postMessage({ id: req.id, ok: true, result: { stopped: true } });
        port.close();
        process.exit(0);
      }
      if (injectFault && req.verb === injectFault) throw new Error(`injected loop fault (WASMAP_TEST_LOOP_FAULT=${injectFault})`);
      answer({ id: req.id, verb: req.verb, args: req.args });
    }
    // with a wake-up fd, control requests end the sleep at once, so it can be long (~0 % CPU)
    runner.stepOrSleep(wakeFd >= 0 ? 1000 : 5, spinUs, wakeFd);
  }
} catch (e) {
  const err = e as Error;
  try { port.postMessage({ fatal: err.stack ?? String(err) }); } catch { /* the daemon still sees the exit */ }
  try { runner.close(); } catch { /* best effort: the process is going anyway */ }
  process.exit(70);
}
