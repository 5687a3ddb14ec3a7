// Where a switch daemon's control socket lives by default.
import { join } from 'node:path';
export function defaultSocket(name: string): string {
  return join(process.env.XDG_RUNTIME_DIR || '/run', 'wasmap', `${name}.sock`);
}
