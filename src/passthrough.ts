// Moved to src/backends/passthrough.ts (every port kind is a backend there); kept for old imports.
export * from './backends/passthrough.js';
