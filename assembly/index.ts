// The module's whole export list. Embedders see exactly these functions and constants; the
// constants come from abi.ts so that TypeScript and other hosts never restate a number.
export * from './abi';
export { region_nbufs, region_span_size, region_priv_size, region_init, region_kring, region_set_name, pool_alloc, pool_free, pool_free_count } from './region';
export { region_repair } from './repair';
export { ring_space, sync_prologue, kring_reset } from './ring';
export { pipe_link, pipe_txsync, rxsync } from './pipe';

/** First free byte after the module's static data: the control plane allocates above it. */
export function heap_base(): usize { return __heap_base; }
export { sw_priv_size, sw_init, sw_attach, sw_detach, sw_round, sw_configure, sw_set_hdr, sw_set_accept } from './switch/forward';
export { mac_hash } from './switch/learn';
export { gen_size, gen_init, gen_tx, gen_rx } from './gen';
export { plan_size, traffic_run, pipe_run } from './loop';
export { csum_add, csum_fold, csum_bytes } from './offload/csum';
export { TPK_SIZE, tpk_pull, tpk_push, tpk_unsent, tpk_scratch_size, tpk_big, tpk_copy_bytes, tpk_copy_setup, tpk_want, tpk_copies } from './tpacket';
export { XSK_SIZE, XSK_FILL, XSK_COMP, XSK_RX, XSK_TX, XSK_NDESC, XSK_UMEM, XSK_FSIZE, XSK_RX_FRAMES, XSK_TX_FRAMES, XSK_FREE, XSK_RX_MOVED, XSK_TX_MOVED, XSK_RX_BAD_DESC, XSK_RX_TOO_BIG, XSK_FILL_LOST, XSK_TX_TOO_BIG, XSK_COMP_BAD, XSK_RING_BAD, XSK_TX_FULL, xsk_init, xsk_pull, xsk_push, xsk_tx_pending, xsk_rx_pending } from './xsk';
export { vnet_convert, vnet_convert_into, vnet_out_room, VN_MAX_TAGS, VN_MAX_OUT, ACCEPT_CSUM, ACCEPT_TSO4, ACCEPT_TSO6, ACCEPT_USO, ACCEPT_ALL } from './offload/vnet';
export { pt_attach, pt_detach, pt_pull_all, pt_publish_all, pt_sleep, pt_wake, pt_take_kick, pt_app_sync, pt_app_want_kick, pt_app_awake } from './csb';
export { MT_MAX, MT_SIZE, MT_SHIFT, MT_CLOCK, MT_MISS, MT_MISS_REGION, MT_MISS_CHUNK, MT_MISSES, MT_CHUNK_SHIFT, MT_CE_SIZE, mt_init, mt_count, mt_add, mt_add_window, mt_chunks, mt_del, mt_gpa, mt_uva, mt_has, mt_uva_chunk } from './virtio/guestmem';
export { VQ_MISS, VQ_SIZE, VQ_NUM, VQ_DESC, VQ_AVAIL, VQ_USED, VQ_LAST_AVAIL, VQ_FEATURES, VQ_ENABLED, VQ_BROKEN, VQ_CALL, VQ_SIGNALLED, VQ_DESC_UVA, VQ_AVAIL_UVA, VQ_USED_UVA, VQ_FRAMES, VQ_BYTES, VQ_CHAINS, VQ_DROP_BIG, VQ_DROP_BAD, VQ_STALLS, VQ_CALLS, VQF_EVENT_IDX, VQF_MRG_RXBUF, VQF_INDIRECT, VQE_AVAIL_IDX, VQE_DESC_INDEX, VQE_ADDR, VQE_WRITABLE, VQE_READONLY, VQE_INDIRECT, VQE_NESTED, VQE_INDIRECT_LEN, VQE_LOOP, VQE_NUM, VQE_RING, VQ_MAX_NUM, VQ_HDR_LEN, VQ_MAX_FRAME, VQ_WALK_BUDGET, VQ_USED_IDX, VQ_ZC_FROM, VQ_ZC_NONE, VQ_ZC_PREFIX, VQ_ZC_MIN, VQ_PTR_SIZE, vq_init, vq_setup, vq_remap, vq_enable, vq_base, vq_error, vq_take_call, vq_want_kick, vq_pull, vq_push, vq_complete, VQ_RX_TAKEN, VQ_RX_STATE, VQ_RX_DIRECT } from './virtio/vring';
export { flow_hash, vq_push_steer, steer_stopped_at } from './virtio/steer';
// VXLAN / Geneve tunnel ports (src/backends/tunnel.ts)
export { TUN_VXLAN, TUN_GENEVE, TS_KIND, TS_V6, TS_DPORT, TS_NPORTS, TS_RXN, TS_RXBUF, TS_RXAREA, TS_NSOCK, TS_TXAREA, TS_GSO, TS_TXCOUNT, TS_RX_DGRAMS, TS_RX_BYTES, TS_D_TRUNC, TS_D_SHORT, TS_D_FLAGS, TS_D_VERSION, TS_D_CRITICAL, TS_D_PROTO, TS_D_OPTS, TS_D_VNI, TS_D_OAM, TS_RX_GRO, TS_RX_SEGS, TUN_MAX_PORTS, TS_SIZE, TP_VNI, TP_SS, TP_TXK, TP_RXK, TP_NREM, TP_MAXF, TP_AGE, TP_RX_FRAMES, TP_RX_BYTES, TP_TX_FRAMES, TP_TX_BYTES, TP_TX_DGRAMS, TP_FLOODED, TP_D_RING_FULL, TP_D_INNER_SHORT, TP_D_TOO_BIG, TP_D_BAD_FRAME, TP_D_NO_REMOTE, TP_FDB_FULL, TP_LEARNED, TP_MOVED, TP_D_SEND_FULL, TP_D_SEND_ERR, TP_GRO_MERGED, TUN_MAX_REMOTES, TP_FDB, FDB_N, FDB_ENTRY, TP_SIZE, TX_SOCKS, TX_MSGS, TUN_TX_AREA, tun_rx_area_size, tun_sock_init, tun_port_add, tun_port_del, tun_set_remotes, tun_fdb_add, tun_fdb_del, tun_fdb_count, tun_fdb_live, tun_rx_prepare, tun_rx, tun_rx_flush, tun_rx_pending, tun_tx, tun_tx_count, tun_tx_msgs } from './tunnel/tunnel';
export { vnet_segment_to } from './offload/vnet';
