#!/bin/bash
# vhost-user multiqueue by hand (bench --vhost runs queues=1): one testpmd with two virtio-user
# ports of QUEUES pairs (flowgen, --rxq/--txq QUEUES) on CPU 0, the back-end (wasmap, or DPDK's
# vhost PMD with io forwarding and QUEUES queues) on CPU 1, as bench --vhost pins them. Prints the
# median Mpps received (both ports summed) over SECONDS one-second samples after 3 of warm-up;
# for wasmap, its per-pair stats in $D/stats.txt. Root, dpdk-testpmd, npm run build first.
# usage: docs/vhost-mq-bench.sh BACKEND(wasmap|dpdk) QUEUES FRAME SECONDS -> median Mpps received (both ways summed)
B=$1; Q=$2; F=$3; S=$4; D=/tmp/mqq2; mkdir -p $D; rm -f $D/*
if [ $B = wasmap ]; then
  taskset -c 1 node $(dirname "$0")/../build/cli.mjs switch vale0 --socket $D/ctl.sock > $D/be.log 2>&1 & BE=$!
  for i in $(seq 50); do grep -q listening $D/be.log && break; sleep 0.2; done
  node $(dirname "$0")/../build/cli.mjs ctl --socket $D/ctl.sock attach vale0 vhost-user:$D/a.sock --name va >/dev/null
  node $(dirname "$0")/../build/cli.mjs ctl --socket $D/ctl.sock attach vale0 vhost-user:$D/b.sock --name vb >/dev/null
else
  dpdk-testpmd --no-huge -m 512 --no-pci -l 1,0 --main-lcore 0 --file-prefix mqq2be --log-level lib.eal:error --vdev net_vhost0,iface=$D/a.sock,queues=$Q --vdev net_vhost1,iface=$D/b.sock,queues=$Q -- --forward-mode=io --rxq=$Q --txq=$Q --auto-start --stats-period 3600 --total-num-mbufs 16384 > $D/be.log 2>&1 & BE=$!
  for i in $(seq 100); do [ -S $D/b.sock ] && break; sleep 0.2; done; sleep 1
fi
dpdk-testpmd --no-huge -m 256 --iova-mode=va --no-pci --log-level lib.eal:error -l 0,1 --main-lcore 1 --file-prefix mqq2f --vdev net_virtio_user0,path=$D/a.sock,queues=$Q,mac=02:00:00:00:0a:01 --vdev net_virtio_user1,path=$D/b.sock,queues=$Q,mac=02:00:00:00:0a:02 -- --forward-mode=flowgen --eth-peer=0,02:00:00:00:0a:02 --eth-peer=1,02:00:00:00:0a:01 --txpkts $((F-4)) --rxq=$Q --txq=$Q --auto-start --stats-period 1 --total-num-mbufs 16384 > $D/f.log 2>&1 & FR=$!
sleep $((S+4)); kill -INT $FR; wait $FR 2>/dev/null
if [ $B = wasmap ]; then node $(dirname "$0")/../build/cli.mjs ctl --socket $D/ctl.sock stats vale0 2>/dev/null | grep -E "pair|from the guest|to the guest" | head -8 > $D/stats.txt; kill -TERM $BE; else kill -INT $BE; fi
wait $BE 2>/dev/null
python3 - $D/f.log $S <<'PY'
import re,sys,statistics
v=[int(x) for x in re.findall(r'Rx-pps:\s+(\d+)', open(sys.argv[1]).read())]
s=[v[i]+v[i+1] for i in range(0,len(v)-1,2)]
s=s[3:3+int(sys.argv[2])]
print(f"{statistics.median(s)/1e6:.3f}" if s else "none")
PY
