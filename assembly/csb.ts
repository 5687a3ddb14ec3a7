// Passthrough: a guest (another process or worker) owns a switch port's rings through a
// Communication Status Block, as a ptnetmap guest owns a host port's. Both halves live here:
// the switch's ("kernel") side, run inside sw_round, and the guest's ("app") side.
//
// Ordering (DESIGN.md §3): the app stores cur, then head; the kernel loads head, then cur. The
// kernel stores hwcur, then hwtail; the app loads hwtail, then hwcur. Every CSB word is
// accessed with wasm atomics (sequentially consistent), which also orders them against the
// need-kick flags: a side that finds nothing to do stores its flag, then re-checks; the other
// side publishes, then loads the flag. One of the two always sees the other (no lost wake-up).
// The kicker clears the flag it acted on (compare-exchange 1 → 0), so a sleeper gets one kick.
import {
  RING_HEAD, RING_CUR, RING_TAIL, KR_RING, KR_USER, KR_RHEAD, KR_HWCUR, KR_HWTAIL, KR_ERR,
  CSB_ATOK_HEAD, CSB_ATOK_CUR, CSB_ATOK_APPL_NEED_KICK, CSB_KTOA_HWCUR, CSB_KTOA_HWTAIL,
  CSB_KTOA_KERN_NEED_KICK, CSB_KTOA_ERROR, CSB_KTOA_KICK_SEQ, CSB_ATOK_TX, CSB_ATOK_RX,
  CSB_KTOA_TX, CSB_KTOA_RX, CSB_PAGE, SW_MAX_PORTS, SW_PT_PORTS, SW_KICKS_DUE, SW_NPORTS,
  SW_ACTIVE, P_TX, P_RX, P_CSB, P_PT_SHADOW, P_KICKS_OUT, P_PT_KICK, P_PT_TXTAIL, P_PT_RXTAIL,
  E_OK, E_INVAL,
} from './abi';
import { sw_port } from './switch/forward';

// ---- the switch's side ------------------------------------------------------------------

/** Make port i a passthrough port: its user fields now come from the CSB page at `csb`
 *  (CSB_PAGE bytes, zeroed or not), through the 128-byte private `shadow`. */
export function pt_attach(sw: usize, i: u32, csb: usize, shadow: usize): i32 {
  if (i >= SW_MAX_PORTS || csb == 0 || shadow == 0 || (csb & (CSB_PAGE - 1)) != 0) return E_INVAL;
  const p = sw_port(sw, i);
  const tx = <usize>load<u32>(p, P_TX), rx = <usize>load<u32>(p, P_RX);
  if (tx == 0 || load<u32>(p, P_CSB) != 0) return E_INVAL;
  memory.fill(csb, 0, CSB_PAGE);
  memory.fill(shadow, 0, 128);
  bind(tx, csb + CSB_ATOK_TX, csb + CSB_KTOA_TX, shadow);
  bind(rx, csb + CSB_ATOK_RX, csb + CSB_KTOA_RX, shadow + 64);
  store<u32>(p, <u32>csb, P_CSB);
  store<u32>(p, <u32>shadow, P_PT_SHADOW);
  store<u32>(p, load<u32>(tx, KR_HWTAIL), P_PT_TXTAIL);
  store<u32>(p, load<u32>(rx, KR_HWTAIL), P_PT_RXTAIL);
  store<u32>(sw, load<u32>(sw, SW_PT_PORTS) + 1, SW_PT_PORTS);
  return E_OK;
}

// The guest starts where the ring is now: head = cur = the kernel's hwcur, tail = hwtail.
function bind(k: usize, atok: usize, ktoa: usize, shadow: usize): void {
  const hwcur = load<u32>(k, KR_HWCUR), hwtail = load<u32>(k, KR_HWTAIL);
  const u = <usize>load<u32>(k, KR_USER);
  store<u32>(shadow, load<u32>(u, RING_HEAD), RING_HEAD);
  store<u32>(shadow, load<u32>(u, RING_CUR), RING_CUR);
  store<u32>(shadow, hwtail, RING_TAIL);
  atomic.store<u32>(atok, load<u32>(u, RING_CUR), CSB_ATOK_CUR);
  atomic.store<u32>(atok, load<u32>(u, RING_HEAD), CSB_ATOK_HEAD);
  atomic.store<u32>(ktoa, hwcur, CSB_KTOA_HWCUR);
  atomic.store<u32>(ktoa, hwtail, CSB_KTOA_HWTAIL);
  store<u32>(k, <u32>shadow, KR_USER);
}

/** Port i goes back to being an ordinary port (its user fields in the ring again). */
export function pt_detach(sw: usize, i: u32): i32 {
  if (i >= SW_MAX_PORTS) return E_INVAL;
  const p = sw_port(sw, i);
  if (load<u32>(p, P_CSB) == 0) return E_INVAL;
  const tx = <usize>load<u32>(p, P_TX), rx = <usize>load<u32>(p, P_RX);
  store<u32>(tx, load<u32>(tx, KR_RING), KR_USER);
  store<u32>(rx, load<u32>(rx, KR_RING), KR_USER);
  store<u32>(p, 0, P_CSB);
  store<u32>(p, 0, P_PT_SHADOW);
  store<u32>(sw, load<u32>(sw, SW_PT_PORTS) - 1, SW_PT_PORTS);
  return E_OK;
}

/** Before a round: snapshot what the guests wrote (head, then cur) into the shadows. */
export function pt_pull_all(sw: usize): void {
  const active = <usize>load<u32>(sw, SW_ACTIVE);
  const n = load<u32>(sw, SW_NPORTS);
  for (let a: u32 = 0; a < n; a++) {
    const p = sw_port(sw, <u32>load<u8>(active + a));
    const csb = <usize>load<u32>(p, P_CSB);
    if (csb == 0) continue;
    const sh = <usize>load<u32>(p, P_PT_SHADOW);
    store<u32>(sh, atomic.load<u32>(csb + CSB_ATOK_TX, CSB_ATOK_HEAD), RING_HEAD);
    store<u32>(sh, atomic.load<u32>(csb + CSB_ATOK_TX, CSB_ATOK_CUR), RING_CUR);
    store<u32>(sh + 64, atomic.load<u32>(csb + CSB_ATOK_RX, CSB_ATOK_HEAD), RING_HEAD);
    store<u32>(sh + 64, atomic.load<u32>(csb + CSB_ATOK_RX, CSB_ATOK_CUR), RING_CUR);
  }
}

/** After a round: publish hwcur then hwtail (and errors); where a tail moved and the guest
 *  asked for it, claim its flag and mark the port for a kick. Returns the ports to kick. */
export function pt_publish_all(sw: usize): u32 {
  const active = <usize>load<u32>(sw, SW_ACTIVE);
  const n = load<u32>(sw, SW_NPORTS);
  let due: u32 = 0;
  for (let a: u32 = 0; a < n; a++) {
    const p = sw_port(sw, <u32>load<u8>(active + a));
    const csb = <usize>load<u32>(p, P_CSB);
    if (csb == 0) continue;
    let kick = publish(<usize>load<u32>(p, P_TX), csb + CSB_KTOA_TX, csb + CSB_ATOK_TX, p, P_PT_TXTAIL);
    kick |= publish(<usize>load<u32>(p, P_RX), csb + CSB_KTOA_RX, csb + CSB_ATOK_RX, p, P_PT_RXTAIL);
    if (kick) {
      store<u32>(p, 1, P_PT_KICK);
      store<u64>(p, load<u64>(p, P_KICKS_OUT) + 1, P_KICKS_OUT);
      // a worker-thread guest sleeps on this word; a process guest on its eventfd (the host)
      atomic.add<i32>(csb + CSB_KTOA_TX, 1, CSB_KTOA_KICK_SEQ);
      atomic.notify(csb + CSB_KTOA_TX + CSB_KTOA_KICK_SEQ, 1);
      due++;
    }
  }
  store<u32>(sw, due, SW_KICKS_DUE);
  return due;
}

function publish(k: usize, ktoa: usize, atok: usize, p: usize, last_off: u32): bool {
  const hwtail = load<u32>(k, KR_HWTAIL);
  atomic.store<u32>(ktoa, load<u32>(k, KR_HWCUR), CSB_KTOA_HWCUR);
  atomic.store<u32>(ktoa, hwtail, CSB_KTOA_HWTAIL);
  const err = load<i32>(k, KR_ERR);
  if (atomic.load<i32>(ktoa, CSB_KTOA_ERROR) != err) atomic.store<i32>(ktoa, err, CSB_KTOA_ERROR);
  if (hwtail == load<u32>(p + last_off)) return false;
  store<u32>(p + last_off, hwtail);
  return atomic.cmpxchg<u32>(atok, 1, 0, CSB_ATOK_APPL_NEED_KICK) == 1;
}

/** The switch is about to sleep: ask every guest for a kick on new tx work, then re-check.
 *  Returns how many guests have work pending already (then do not sleep; call pt_wake).
 *  Released rx slots need no kick: the next round, whatever wakes it, takes them back. */
export function pt_sleep(sw: usize): u32 {
  const active = <usize>load<u32>(sw, SW_ACTIVE);
  const n = load<u32>(sw, SW_NPORTS);
  let pending: u32 = 0;
  for (let a: u32 = 0; a < n; a++) {
    const p = sw_port(sw, <u32>load<u8>(active + a));
    const csb = <usize>load<u32>(p, P_CSB);
    if (csb == 0) continue;
    atomic.store<u32>(csb + CSB_KTOA_TX, 1, CSB_KTOA_KERN_NEED_KICK);
    if (atomic.load<u32>(csb + CSB_ATOK_TX, CSB_ATOK_HEAD) != load<u32>(<usize>load<u32>(p, P_TX), KR_RHEAD)) pending++;
  }
  return pending;
}

/** The switch is running again: guests need not kick it. */
export function pt_wake(sw: usize): void {
  const active = <usize>load<u32>(sw, SW_ACTIVE);
  const n = load<u32>(sw, SW_NPORTS);
  for (let a: u32 = 0; a < n; a++) {
    const csb = <usize>load<u32>(sw_port(sw, <u32>load<u8>(active + a)), P_CSB);
    if (csb == 0) continue;
    atomic.store<u32>(csb + CSB_KTOA_TX, 0, CSB_KTOA_KERN_NEED_KICK);
  }
}

/** Port i's kick flag for this round, cleared as it is read. */
export function pt_take_kick(sw: usize, i: u32): u32 {
  if (i >= SW_MAX_PORTS) return 0;
  const p = sw_port(sw, i);
  const k = load<u32>(p, P_PT_KICK);
  store<u32>(p, 0, P_PT_KICK);
  return k;
}

// ---- the guest's side -------------------------------------------------------------------
// `ring` is the guest's view of a netmap_ring (in its own mapping of the port's region),
// `atok`/`ktoa` the ring's two CSB entries in its mapping of the CSB page.

/** netmap's txsync/rxsync for a guest: publish cur then head, read hwtail into tail.
 *  Returns 1 when the switch asked to be kicked (the flag is claimed: kick it once). */
export function pt_app_sync(ring: usize, atok: usize, ktoa: usize): u32 {
  atomic.store<u32>(atok, load<u32>(ring, RING_CUR), CSB_ATOK_CUR);
  atomic.store<u32>(atok, load<u32>(ring, RING_HEAD), CSB_ATOK_HEAD);
  store<u32>(ring, atomic.load<u32>(ktoa, CSB_KTOA_HWTAIL), RING_TAIL);
  if (atomic.load<u32>(ktoa, CSB_KTOA_KERN_NEED_KICK) == 0) return 0;
  return atomic.cmpxchg<u32>(ktoa, 1, 0, CSB_KTOA_KERN_NEED_KICK) == 1 ? 1 : 0;
}

/** The guest found nothing to do on this ring: ask for a kick, then re-check. Returns 1 if
 *  the tail moved meanwhile (do not sleep: the flag is withdrawn), 0 to go to sleep. */
export function pt_app_want_kick(ring: usize, atok: usize, ktoa: usize): u32 {
  atomic.store<u32>(atok, 1, CSB_ATOK_APPL_NEED_KICK);
  const hwtail = atomic.load<u32>(ktoa, CSB_KTOA_HWTAIL);
  if (hwtail == load<u32>(ring, RING_TAIL)) return 0;
  atomic.store<u32>(atok, 0, CSB_ATOK_APPL_NEED_KICK);
  store<u32>(ring, hwtail, RING_TAIL);
  return 1;
}

/** After waking (or giving up waiting): the guest no longer wants kicks on this ring. */
export function pt_app_awake(atok: usize): void {
  atomic.store<u32>(atok, 0, CSB_ATOK_APPL_NEED_KICK);
}
