#!/bin/sh
# TCP through VXLAN between two "hosts" (namespaces on one veth underlay), each host a switch
# with an inner namespace behind it: Linux vxlan + bridge on both, wasmap (TAP + vxlan port) on
# both, and wasmap on one side with Linux on the other. iperf3 TCP, RUNS runs of SECS seconds
# each way; prints every run and the median. Run as root from the repository (after npm run
# build). Everything is named tb* and removed at the end.
set -u
RUNS=${RUNS:-3}; SECS=${SECS:-3}; POLL=${POLL:-sleep} # the wasmap daemons' --poll mode
cd "$(dirname "$0")/.." || exit 1
PIDS=""
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null; done
  for n in A B a b; do ip netns del tb$n 2>/dev/null; done
  rm -f /tmp/wasmap-tbA.sock /tmp/wasmap-tbB.sock
}
trap cleanup EXIT
# $1: A side (linux|wasmap), $2: B side
topo() {
  cleanup; PIDS=""
  for n in A B a b; do ip netns add tb$n; ip netns exec tb$n ip link set lo up; ip netns exec tb$n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; done
  ip link add tbAu type veth peer name tbBu
  ip link set tbAu netns tbA; ip link set tbBu netns tbB
  for h in A:1:2:$1 B:2:1:$2; do
    H=$(echo $h | cut -d: -f1); N=$(echo $h | cut -d: -f2); R=$(echo $h | cut -d: -f3); K=$(echo $h | cut -d: -f4); L=$(echo $H | tr AB ab)
    ip netns exec tb$H ip addr add 10.99.0.$N/24 dev tb${H}u; ip netns exec tb$H ip link set tb${H}u up
    if [ "$K" = linux ]; then
      ip netns exec tb$H ip link add vx42 type vxlan id 42 local 10.99.0.$N remote 10.99.0.$R dstport 4789
      ip netns exec tb$H ip link add br42 type bridge
      ip netns exec tb$H ip link set vx42 master br42 up; ip netns exec tb$H ip link set br42 up
      ip netns exec tb$H ip link add ix type veth peer name ii
      ip netns exec tb$H ip link set ix master br42 up
      ip netns exec tb$H ip link set ii netns tb$L
      # a Linux tunnel leaves the inner checksum to the underlay device; a wasmap peer's socket
      # needs it done (a veth never does it): software checksums on this host's underlay end
      [ "$1" != "$2" ] && ip netns exec tb$H ethtool -K tb${H}u tx off >/dev/null
    else
      ip netns exec tb$H node build/cli.mjs switch vale0 --poll "$POLL" --socket /tmp/wasmap-tb$H.sock >/dev/null 2>&1 &
      PIDS="$PIDS $!"; sleep 1.5
      node build/cli.mjs ctl --socket /tmp/wasmap-tb$H.sock attach vale0 tap:ii >/dev/null
      node build/cli.mjs ctl --socket /tmp/wasmap-tb$H.sock attach vale0 vxlan:10.99.0.$N --vni 42 --remote 10.99.0.$R >/dev/null
      ip netns exec tb$H ip link set ii netns tb$L
    fi
    ip netns exec tb$L ip link set ii mtu 1450; ip netns exec tb$L ip addr add 192.168.50.$N/24 dev ii; ip netns exec tb$L ip link set ii up
  done
  ip netns exec tba ping -c 2 -i 0.2 -W 2 192.168.50.2 >/dev/null || echo "ping failed ($1 - $2)"
}
# $1 from, $2 to, $3 address: RUNS runs, Gbit/s each, then the median
tcp() {
  vals=""
  for i in $(seq 1 "$RUNS"); do
    ip netns exec tb$2 iperf3 -s -1 -p 5299 >/dev/null 2>&1 & S=$!
    sleep 0.4
    v=$(ip netns exec tb$1 timeout $((SECS + 10)) iperf3 -c "$3" -p 5299 -t "$SECS" -J 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log((JSON.parse(s).end.sum_received.bits_per_second/1e9).toFixed(2))}catch{console.log("0")}})')
    wait $S 2>/dev/null
    vals="$vals $v"
  done
  med=$(echo $vals | tr ' ' '\n' | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  echo "$vals -> median $med"
}
for pair in linux:linux wasmap:wasmap wasmap:linux; do
  a=${pair%:*}; b=${pair#*:}
  topo "$a" "$b"
  echo "A=$a B=$b (wasmap --poll $POLL)  a->b: $(tcp a b 192.168.50.2)   b->a: $(tcp b a 192.168.50.1)"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
