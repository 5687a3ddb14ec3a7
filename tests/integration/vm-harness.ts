// The QEMU guest harness lives in src/vm/qemu.ts (the product uses it too: `wasmap bench --vm`);
// the VM tests keep importing it from here.
export * from '../../src/vm/qemu.js';
