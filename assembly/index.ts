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
export { TPK_SIZE, tpk_pull, tpk_push, tpk_unsent, tpk_scratch_size, tpk_big } from './tpacket';
export { XSK_SIZE, XSK_FILL, XSK_COMP, XSK_RX, XSK_TX, XSK_NDESC, XSK_UMEM, XSK_FSIZE, XSK_RX_FRAMES, XSK_TX_FRAMES, XSK_FREE, XSK_RX_MOVED, XSK_TX_MOVED, XSK_RX_BAD_DESC, XSK_RX_TOO_BIG, XSK_FILL_LOST, XSK_TX_TOO_BIG, XSK_COMP_BAD, XSK_RING_BAD, XSK_TX_FULL, xsk_init, xsk_pull, xsk_push, xsk_tx_pending, xsk_rx_pending } from './xsk';
export { vnet_convert, vnet_convert_into, vnet_out_room, VN_MAX_TAGS, VN_MAX_OUT, ACCEPT_CSUM, ACCEPT_TSO4, ACCEPT_TSO6, ACCEPT_USO, ACCEPT_ALL } from './offload/vnet';
export { pt_attach, pt_detach, pt_pull_all, pt_publish_all, pt_sleep, pt_wake, pt_take_kick, pt_app_sync, pt_app_want_kick, pt_app_awake } from './csb';
export { MT_MAX, MT_SIZE, MT_SHIFT, MT_CLOCK, MT_MISS, MT_MISS_REGION, MT_MISS_CHUNK, MT_MISSES, MT_CHUNK_SHIFT, MT_CE_SIZE, mt_init, mt_count, mt_add, mt_add_window, mt_chunks, mt_del, mt_gpa, mt_uva, mt_has, mt_uva_chunk } from './virtio/guestmem';
export { VQ_MISS, VQ_SIZE, VQ_NUM, VQ_DESC, VQ_AVAIL, VQ_USED, VQ_LAST_AVAIL, VQ_FEATURES, VQ_ENABLED, VQ_BROKEN, VQ_CALL, VQ_SIGNALLED, VQ_DESC_UVA, VQ_AVAIL_UVA, VQ_USED_UVA, VQ_FRAMES, VQ_BYTES, VQ_CHAINS, VQ_DROP_BIG, VQ_DROP_BAD, VQ_STALLS, VQ_CALLS, VQF_EVENT_IDX, VQF_MRG_RXBUF, VQF_INDIRECT, VQE_AVAIL_IDX, VQE_DESC_INDEX, VQE_ADDR, VQE_WRITABLE, VQE_READONLY, VQE_INDIRECT, VQE_NESTED, VQE_INDIRECT_LEN, VQE_LOOP, VQE_NUM, VQE_RING, VQ_MAX_NUM, VQ_HDR_LEN, VQ_MAX_FRAME, VQ_WALK_BUDGET, vq_init, vq_setup, vq_remap, vq_enable, vq_base, vq_error, vq_take_call, vq_want_kick, vq_pull, vq_push } from './virtio/vring';
