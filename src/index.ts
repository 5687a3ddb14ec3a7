// wasmap as a library: the control-plane classes for embedding in a Node program.
export { Datapath, check } from './datapath.js';
export type { DatapathOptions, WasmapFunctions } from './datapath.js';
export { Region, RingView } from './port.js';
export type { RegionOptions } from './port.js';
export { Pipe, PipeEnd } from './pipe.js';
export { Switch, SwitchPort, conservation, totalDrops } from './switch.js';
export type { PortStats, SwitchStats, AttachOptions } from './switch.js';
export { Vale } from './vale.js';
export { Generator, TrafficPlan, parseMac, parseAddrRange } from './gen.js';
export { parsePortName, formatPortName, NR_REG, NR_FLAG } from './portname.js';
export { loadHost, requireHost, hostMissingReason } from './host.js';
export { WasmapError } from './errors.js';
