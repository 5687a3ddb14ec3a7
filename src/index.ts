// wasmap as a library: the control-plane classes for embedding in a Node program.
export { Datapath, check } from './datapath.js';
export type { DatapathOptions, WasmapFunctions } from './datapath.js';
export { Region, RingView } from './port.js';
export type { RegionOptions } from './port.js';
export { Pipe, PipeEnd } from './pipe.js';
export { WasmapError } from './errors.js';
