// The module's whole export list. Embedders see exactly these functions and constants; the
// constants come from abi.ts so that TypeScript and other hosts never restate a number.
export * from './abi';
export { region_nbufs, region_span_size, region_priv_size, region_init, region_kring, region_set_name, pool_alloc, pool_free, pool_free_count } from './region';
export { region_repair } from './repair';
export { ring_space, sync_prologue, kring_reset } from './ring';
export { pipe_link, pipe_txsync, rxsync } from './pipe';

/** First free byte after the module's static data: the control plane allocates above it. */
export function heap_base(): usize { return __heap_base; }
