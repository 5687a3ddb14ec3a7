// Worker-thread entry of the switch daemon: runs the forwarding loop and answers control
// requests between passes (receiveMessageOnPort, so the loop never yields to an event loop).
import { workerData, receiveMessageOnPort, MessagePort } from 'node:worker_threads';
import { Runner, Request } from './runner.js';

const { port, switches, spinUs, wakeFd } = workerData as { port: MessagePort; switches: string[]; spinUs: number; wakeFd: number };
let runner: Runner;
try {
  runner = new Runner(switches);
} catch (e) {
  port.postMessage({ ready: false, error: (e as Error).message });
  throw e;
}
port.postMessage({ ready: true });
for (;;) {
  let msg;
  while ((msg = receiveMessageOnPort(port))) {
    const req = msg.message as Request & { stop?: boolean };
    if (req.stop) {
      runner.close();
      port.postMessage({ id: req.id, ok: true, result: { stopped: true } });
      port.close();
      process.exit(0);
    }
    port.postMessage(runner.handle(req));
  }
  // with a wake-up fd, control requests end the sleep at once, so it can be long (~0 % CPU)
  runner.stepOrSleep(wakeFd >= 0 ? 1000 : 5, spinUs, wakeFd);
}
