#!/bin/bash
# AF_XDP ports against dpdk-testpmd's af_xdp PMD on the same veth pair, interleaved runs.
# usage (root, after npm run build): docs/af_xdp-bench.sh [native|skb] [RUNS]
# Needs: iproute2 ethtool iperf3 netsniff-ng (trafgen) dpdk-dev python3.
# Namespaces axbA/axbB, veths axba0/axba1, axbb0/axbb1 (removed at exit). Per run, for each
# forwarder: 64-byte frames from trafgen for 4 s (Mpps delivered at the far end's rx counter,
# and offered at the near end's tx counter), iperf3 -u -l 18 (60-byte frames, Mpps received),
# ping RTT, iperf3 TCP.
set -u
P=axb
W=$(cd "$(dirname "$0")/.." && pwd)
MODE=${1:-native}; RUNS=${2:-3}
D=; T=
cleanup() {
  [ -n "$D" ] && kill "$D" 2>/dev/null; [ -n "$T" ] && kill "$T" 2>/dev/null
  ip netns del ${P}A 2>/dev/null; ip netns del ${P}B 2>/dev/null
  ip link del ${P}a0 2>/dev/null; ip link del ${P}b0 2>/dev/null
  rm -f /tmp/${P}.sock /tmp/${P}.cfg
}
trap cleanup EXIT
cleanup
ip netns add ${P}A; ip netns add ${P}B
for n in A B; do ip netns exec ${P}$n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; ip -n ${P}$n link set lo up; done
for x in a b; do
  ip link add ${P}${x}0 type veth peer name ${P}${x}1
  sysctl -qw net.ipv6.conf.${P}${x}0.disable_ipv6=1      # the host end sends nothing of its own
  ip link set ${P}${x}0 up
done
ip link set ${P}a1 netns ${P}A; ip link set ${P}b1 netns ${P}B
ip -n ${P}A addr add 10.77.0.1/24 dev ${P}a1; ip -n ${P}A link set ${P}a1 up
ip -n ${P}B addr add 10.77.0.2/24 dev ${P}b1; ip -n ${P}B link set ${P}b1 up
# XDP never completes checksums nor cuts GSO frames: the namespace ends send whole frames
ip netns exec ${P}A ethtool -K ${P}a1 tx off tso off gso off >/dev/null
ip netns exec ${P}B ethtool -K ${P}b1 tx off tso off gso off >/dev/null
mac() { ip -n $1 -j link show $2 | python3 -c 'import json,sys;print(json.load(sys.stdin)[0]["address"])'; }
echo "{ eth(da=$(mac ${P}B ${P}b1), sa=$(mac ${P}A ${P}a1)), ipv4(saddr=10.77.0.1, daddr=10.77.0.2, ttl=64), udp(sp=9, dp=9), fill(0x41, 18) }" > /tmp/${P}.cfg

measure() {
  ip netns exec ${P}A ping -c 2 -i 0.2 -W 1 10.77.0.2 >/dev/null
  rx() { ip netns exec ${P}B cat /sys/class/net/${P}b1/statistics/rx_packets; }
  tx() { ip netns exec ${P}A cat /sys/class/net/${P}a1/statistics/tx_packets; }
  ip netns exec ${P}A timeout 7 trafgen --dev ${P}a1 --conf /tmp/${P}.cfg --cpus 1 -q >/dev/null 2>&1 &
  local g=$!
  sleep 2; local r0=$(rx) t0=$(tx) s0=$(date +%s.%N); sleep 4; local r1=$(rx) t1=$(tx) s1=$(date +%s.%N)
  wait $g
  python3 -c "d=$s1-$s0; print('trafgen_mpps %.3f offered %.3f' % (($r1-$r0)/d/1e6, ($t1-$t0)/d/1e6), end=' ')"
  ip netns exec ${P}B timeout 20 iperf3 -s -1 -p 5398 >/dev/null & local s=$!; sleep 0.3
  ip netns exec ${P}A timeout 15 iperf3 -c 10.77.0.2 -p 5398 -u -l 18 -b 0 -t 3 -J | python3 -c 'import json,sys;s=json.load(sys.stdin)["end"]["sum"];print("udp18_mpps %.3f" % ((s["packets"]-s["lost_packets"])/3/1e6), end=" ")'
  wait $s
  ip netns exec ${P}A ping -c 20 -i 0.05 -q 10.77.0.2 | awk -F/ '/rtt/ {printf "rtt_us %d ", $5*1000}'
  ip netns exec ${P}B timeout 20 iperf3 -s -1 -p 5399 >/dev/null & s=$!; sleep 0.3
  ip netns exec ${P}A timeout 15 iperf3 -c 10.77.0.2 -p 5399 -t 5 -J | python3 -c 'import json,sys;print("gbps %.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
  wait $s
}

for i in $(seq 1 "$RUNS"); do
  node $W/build/cli.mjs switch vale0 --socket /tmp/${P}.sock >/dev/null 2>&1 & D=$!
  sleep 1.5
  for x in a b; do node $W/build/cli.mjs ctl --socket /tmp/${P}.sock attach vale0 af_xdp:${P}${x}0 --xdp-mode $MODE >/dev/null; done
  echo "wasmap-af_xdp-$MODE run$i $(measure)"
  kill $D; wait $D 2>/dev/null; D=; sleep 0.5
  timeout 60 dpdk-testpmd --no-huge --no-pci -m 1024 -l 0,1 --vdev net_af_xdp0,iface=${P}a0 --vdev net_af_xdp1,iface=${P}b0 \
    -- --forward-mode=io --auto-start < <(sleep 70) >/tmp/${P}-testpmd.log 2>&1 & T=$!
  sleep 5
  echo "testpmd-af_xdp run$i $(measure)"
  kill $T; wait $T 2>/dev/null; T=; sleep 1.5
done
