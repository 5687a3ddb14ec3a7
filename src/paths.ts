// Built artifacts live in build/ at the repository root; bundles run from build/ or
// build/tests/, sources from src/. Walk up from the caller until build/NAME exists.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function findBuildFile(name: string, from: string = import.meta.url): string | null {
  let dir = dirname(fileURLToPath(from));
  for (let i = 0; i < 6; i++) {
    for (const candidate of [join(dir, name), join(dir, 'build', name)]) {
      if (existsSync(candidate)) return candidate;
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return null;
}
