// The one contract every port kind meets (DESIGN.md §8; Snabb's apps are the model): a backend
// owns a switch port and its peer (a TAP fd, an AF_PACKET socket and its mapped rings, a
// vhost-user session, a passthrough guest) and moves batches between them. The runner knows
// nothing else: one registry, and per pass pull every backend → rounds → push every backend →
// sleep. Each call is fenced by the runner: a throw takes that backend down with the reason.
// A new kind is one file here (plus its native part) and one line in `kinds` (src/runner.ts).
import type { Datapath } from '../datapath.js';
import type { NativeHost } from '../host.js';
import type { Switch, SwitchPort, PortStats } from '../switch.js';

/** Before the loop sleeps: 'sleep' (armed, poll the fds given), 'nap' (sleep at most 1 ms),
 *  'work' (something arrived while arming: do not sleep). */
export type Verdict = 'sleep' | 'nap' | 'work';
/** Fields a backend adds to its port's row in `list` / `stats` (JSON-able). */
export type Fields = Record<string, unknown>;

/** One sleep of the loop: arming and disarming shared by several backends (a switch's
 *  passthrough guests, a UMEM's queues) is done once per key in it. */
export interface SleepPass { once<T>(key: string, f: () => T): T }

export interface Backend {
  readonly kind: string;
  readonly port: SwitchPort;
  /** Why it moves no frames (no peer yet, the peer broke), null while it does. */
  down: string | null;
  /** Peer → the port's tx ring, one batch. Frames moved. */
  pull(): number;
  /** The port's rx ring → peer, one batch. Frames moved. */
  push(): number;
  /** Arm before sleeping: push the fds to poll, ask the peer for a kick, look once more. */
  sleepFds?(fds: number[], pass: SleepPass): Verdict;
  /** After the sleep (or a sleep given up): revents for the fds it gave, in order (0: not
   *  polled); disarm. Called on every backend whose sleepFds ran. */
  woke?(fds: number[], revents: number[], pass: SleepPass): void;
  /** Control work between passes (a vhost-user message loop). Never blocks. */
  service?(): void;
  /** Kind-specific fields for `list` and `stats`. */
  info(): Fields;
  stats(): Fields;
  /** Peer memory mapped into the linear memory (guest RAM), bytes: for leak checks. */
  readonly mappedBytes?: number;
  /** The port lives and dies with its peer (a passthrough guest's rings are the port): a fault
   *  removes it at once and every removal is kept in the switch's `guestsGone`. Otherwise a
   *  fault leaves the port attached and listed down (frames to it counted) until detached. */
  readonly reclaim?: boolean;
  /** Does it answer to `spec`, a name as attached ('tap:eth0', 'vhost-user:PATH')? (detach, capture) */
  answersTo?(spec: string): boolean;
  /** Release the peer and all this backend holds. With `detach` the port goes too: call it when
   *  the port may go (peer stopped, port memory not yet freed) and return its last counters as
   *  `stats`, with any fields for the detach reply; without it (a fault) the port stays. Called
   *  again with `detach` after a fault: then only the port goes. */
  close(reason: string, detach?: () => PortStats): { stats?: PortStats } & Fields;
}

/** What a factory in the runner's `kinds` table gets: `spec` is the port as given (with its
 *  `kind:` prefix), `args` the attach request, `attached` the registry (to refuse a second
 *  claim on the same interface or socket before touching anything). */
export interface AttachContext {
  host: NativeHost; dp: Datapath; sw: Switch; spec: string; args: Record<string, unknown>;
  attached: ReadonlyMap<string, Backend>;
  /** The switch's I/O threads (TAP ports do their kernel I/O there), when it runs any. */
  io?: import('./tap-io.js').IoPool;
}
export type BackendFactory = (c: AttachContext) => Backend;

/** A fault in a named part of a backend's work: the runner's reason says "fault in <what>". */
export class StageFault extends Error {
  constructor(readonly what: string, cause: unknown) { super(cause instanceof Error ? cause.message : String(cause)); }
}
export function stage<T>(what: string, work: () => T): T {
  try { return work(); } catch (e) { throw e instanceof StageFault ? e : new StageFault(what, e); }
}
