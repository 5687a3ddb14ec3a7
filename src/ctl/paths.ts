// Where a switch daemon's control socket lives by default.
import { join } from 'node:path';
import { WasmapError } from '../errors.js';
export function defaultSocket(name: string): string {
  return join(process.env.XDG_RUNTIME_DIR || '/run', 'wasmap', `${name}.sock`);
}

/** sun_path holds 108 bytes with the terminating NUL: longer paths would be truncated silently. */
export const MAX_SOCKET_PATH = 107;
export function checkSocketPath(path: string): void {
  const n = Buffer.byteLength(path);
  if (n === 0) throw new WasmapError('EINVAL', 'the control socket path is empty');
  if (n > MAX_SOCKET_PATH) throw new WasmapError('ENAMETOOLONG', `the control socket path is ${n} bytes; a unix socket path is at most ${MAX_SOCKET_PATH} bytes: pick a shorter --socket`);
  if (path.includes('\0')) throw new WasmapError('EINVAL', 'the control socket path contains a NUL byte');
}

