#!/bin/bash
# Measures what docs/poll-modes.md and docs/io-threads.md report: ping RTT, iperf3 TCP and
# 64-byte UDP (iperf3 -u -l 18 -b 0) between two namespaces, through two wasmap TAP ports on a
# switch daemon started with the flags given, or through a Linux bridge ('bridge'); and the
# daemon's CPU (all its threads, from /proc/PID/stat utime+stime) during each test and idle.
# Usage (root): src/tools/io-bench.sh bridge|"DAEMON FLAGS" [rtt|tcp|udp|idle ...]
#   e.g. src/tools/io-bench.sh "--poll busy" rtt idle;  src/tools/io-bench.sh "--io-threads 2" tcp udp
# Prints one line per test: name value unit cpu_pct. Names: per-run prefix wib$$.
set -euo pipefail
P="wib$(( $$ % 10000 ))"; A="${P}A"; B="${P}B"; SOCK="/tmp/wasmap-iob-$P.sock"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
MODE="$1"; shift; TESTS="${*:-rtt tcp udp idle}"
DPID=""
cleanup() {
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true; ip netns del "$B" 2>/dev/null || true
  for l in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$P" || true); do ip link del "$l" 2>/dev/null || true; done
  rm -f "$SOCK"
}
trap cleanup EXIT
place() { ip link set "$2" netns "$1"; ip netns exec "$1" ip addr add "$3/24" dev "$2"; ip netns exec "$1" ip link set "$2" up; ip netns exec "$1" ip link set lo up; }
ip netns add "$A"; ip netns add "$B"
# no IPv6 chatter (router solicitations, MLD): idle must mean no frames at all
for n in "$A" "$B"; do ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; done
if [ "$MODE" = bridge ]; then
  ip link add "${P}br" type bridge; ip link set "${P}br" up
  for n in a b; do ip link add "${P}${n}0" type veth peer name "${P}${n}1"; ip link set "${P}${n}0" master "${P}br"; ip link set "${P}${n}0" up; done
  place "$A" "${P}a1" 10.97.0.1; place "$B" "${P}b1" 10.97.0.2
else
  # shellcheck disable=SC2086
  node "$ROOT/build/cli.mjs" switch vale0 --socket "$SOCK" $MODE > "/tmp/wasmap-iob-$P.log" 2>&1 &
  DPID=$!
  for _ in $(seq 100); do grep -q listening "/tmp/wasmap-iob-$P.log" 2>/dev/null && break; sleep 0.1; done
  for t in t1 t2; do node "$ROOT/build/cli.mjs" ctl --socket "$SOCK" attach vale0 "tap:${P}$t" >/dev/null; done
  place "$A" "${P}t1" 10.97.0.1; place "$B" "${P}t2" 10.97.0.2
fi
cpu() { [ -n "$DPID" ] && awk '{print $14+$15}' "/proc/$DPID/stat" || echo 0; }
now() { date +%s.%N; }
c=0
run() { # run CMD; c = the daemon's CPU % (all threads, of one core) while it ran
  local c0 t0 c1 t1; c0=$(cpu); t0=$(now); eval "$1"; c1=$(cpu); t1=$(now)
  c=$(awk -v a="$c0" -v b="$c1" -v t0="$t0" -v t1="$t1" 'BEGIN{ printf "%.1f", (b-a)/100/(t1-t0)*100 }')
}
ip netns exec "$A" ping -c 3 -i 0.2 -W 2 10.97.0.2 >/dev/null
for t in $TESTS; do
  case $t in
    rtt) run 'out=$(ip netns exec "$A" ping -c 200 -i 0.01 10.97.0.2)'
         echo "rtt_median_us $(echo "$out" | grep -o 'time=[0-9.]*' | cut -d= -f2 | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]*1000}') rtt_avg_us $(echo "$out" | awk -F/ '/^rtt/{print $5*1000}') cpu_pct $c loss $(echo "$out" | grep -o '[0-9.]*% packet loss')";;
    tcp) ip netns exec "$B" iperf3 -s -1 -D -p 5311; sleep 0.3
         run 'j=$(ip netns exec "$A" iperf3 -c 10.97.0.2 -p 5311 -t ${SECS:-5} -J)'
         echo "tcp_gbps $(echo "$j" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9,3))') cpu_pct $c";;
    tcprev) ip netns exec "$B" iperf3 -s -1 -D -p 5313; sleep 0.3
         run 'j=$(ip netns exec "$A" iperf3 -c 10.97.0.2 -p 5313 -R -t ${SECS:-5} -J)'
         echo "tcprev_gbps $(echo "$j" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9,3))') cpu_pct $c";;
    udp) ip netns exec "$B" iperf3 -s -1 -D -p 5312; sleep 0.3
         run 'j=$(ip netns exec "$A" iperf3 -c 10.97.0.2 -p 5312 -u -l 18 -b 0 -t ${SECS:-5} -J)'
         echo "udp64_mpps $(echo "$j" | python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum"]; print(round((s["packets"]-s["lost_packets"])/s["seconds"]/1e6,4))') cpu_pct $c";;
    idle) sleep 3; run "sleep ${IDLE:-2}"; echo "idle cpu_pct $c";;
  esac
done
