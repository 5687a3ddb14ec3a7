#!/bin/bash
# Guest memory seen through the window vs mapped whole (docs/guest-memory.md): the setup of
# `wasmap bench --vhost` (one dpdk-testpmd holding two virtio-user ports, flowgen both ways,
# its forwarding lcore on CPU 0; the switch alone on CPU 1), with the front-end's memory size
# as the variable: -m 256 (mapped whole) or -m 8192 (--no-mlockall: touched lazily; both
# ports windowed). Rate = the switch's frames delivered into the guests' RX queues (both
# ways summed) over SECONDS, Mpps, and the switch's CPU time per delivered frame (ns: less
# sensitive to other load on the machine); medians of RUNS runs, the configurations interleaved.
# usage (root, after npm run build): docs/guest-memory-bench.sh [RUNS] [SECONDS]
# Extra rows: the cost of misses — the same pool (16384 mbufs: about 33 chunks in use) through
# a window of 32 slots, and a pool of 262144 mbufs (≈ 600 MiB, ≈ 300 chunks) through 64.
set -u
W=$(cd "$(dirname "$0")/.." && pwd)
CLI="node $W/build/cli.mjs"
RUNS=${1:-3}; SECS=${2:-5}
P=/tmp/gmb$$
D=; T=
cleanup() { [ -n "$T" ] && kill "$T" 2>/dev/null; [ -n "$D" ] && kill "$D" 2>/dev/null; wait 2>/dev/null; rm -f $P-*; }
trap cleanup EXIT

# one run: MEM LEN WINDOW MBUFS → prints "mpps misses evictions"
run() {
  local mem=$1 len=$2 win=$3 mbufs=$4
  rm -f $P-*
  taskset -c 1 $CLI switch vale0 --socket $P-ctl.sock > $P-d.log 2>&1 & D=$!
  for i in $(seq 50); do grep -q listening $P-d.log 2>/dev/null && break; sleep 0.1; done
  $CLI ctl --socket $P-ctl.sock attach vale0 vhost-user:$P-a.sock --name va --window $win > /dev/null
  $CLI ctl --socket $P-ctl.sock attach vale0 vhost-user:$P-b.sock --name vb --window $win > /dev/null
  dpdk-testpmd --no-huge -m $mem --iova-mode=va --no-pci --log-level lib.eal:error -l 0,1 --main-lcore 1 --file-prefix gmb$$ \
    --vdev net_virtio_user0,path=$P-a.sock,queues=1,mac=02:00:00:00:0b:01 --vdev net_virtio_user1,path=$P-b.sock,queues=1,mac=02:00:00:00:0b:02 \
    -- --no-mlockall --forward-mode=flowgen --eth-peer=0,02:00:00:00:0b:02 --eth-peer=1,02:00:00:00:0b:01 --txpkts $((len - 4)) \
    --auto-start --stats-period 3600 --total-num-mbufs $mbufs > $P-t.log 2>&1 & T=$!
  local stats="$CLI ctl --socket $P-ctl.sock --json stats vale0"
  local sum='let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const p=JSON.parse(s)[0].ports;const f=p.reduce((a,x)=>a+x.queues.rx.frames,0);const w=p.map(x=>x.window||{misses:0,evictions:0});console.log(f,w.reduce((a,x)=>a+x.misses,0),w.reduce((a,x)=>a+x.evictions,0),Date.now())})'
  for i in $(seq 300); do read f _ < <($stats | node -e "$sum"); [ "$f" -gt 100000 ] && break; sleep 0.1; done
  sleep 1
  read f0 m0 e0 t0 < <($stats | node -e "$sum")
  local c0=$(awk '{print $14+$15}' /proc/$D/stat)
  sleep $SECS
  local c1=$(awk '{print $14+$15}' /proc/$D/stat)
  read f1 m1 e1 t1 < <($stats | node -e "$sum")
  kill $T; wait $T 2>/dev/null; T=
  kill $D; wait $D 2>/dev/null; D=
  # Mpps, misses, evictions, the switch's CPU ns per delivered frame (less sensitive to other load)
  node -e "console.log((($f1-$f0)/(($t1-$t0)/1000)/1e6).toFixed(3), $m1-$m0, $e1-$e0, Math.round(($c1-$c0)/$(getconf CLK_TCK)*1e9/Math.max(1,$f1-$f0)))"
}

declare -A R
CONFIGS=("256 64 64 16384" "8192 64 64 16384" "256 1518 64 16384" "8192 1518 64 16384" "8192 64 32 16384" "8192 64 64 262144")
# ONLY="MEM LEN WINDOW MBUFS,..." runs just those
[ -n "${ONLY:-}" ] && IFS=, read -ra CONFIGS <<< "$ONLY"
for r in $(seq $RUNS); do
  for c in "${CONFIGS[@]}"; do
    out=$(run $c)
    echo "run $r: -m ${c// / } → $out" >&2
    R["$c"]+="$out;"
  done
done
printf '%-8s %-6s %-7s %-7s %10s %12s %12s %12s\n' memMiB bytes window mbufs Mpps misses/s evictions/s ns/frame
for c in "${CONFIGS[@]}"; do
  node -e "
    const v='${R[$c]}'.split(';').filter(Boolean).map(l=>l.split(' ').map(Number));
    const med=a=>{a=[...a].sort((x,y)=>x-y);return a[a.length>>1]};
    const [m,b,w,n]='$c'.split(' ');
    console.log(m.padEnd(8),b.padEnd(6),w.padEnd(7),n.padEnd(7),med(v.map(x=>x[0])).toFixed(3).padStart(10),(med(v.map(x=>x[1]))/$SECS).toFixed(0).padStart(12),(med(v.map(x=>x[2]))/$SECS).toFixed(0).padStart(12),String(med(v.map(x=>x[3]))).padStart(12))"
done
