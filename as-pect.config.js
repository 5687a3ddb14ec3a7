// as-pect runs the AssemblyScript specs in tests/assembly against the datapath sources.
export default {
  entries: ['tests/assembly/**/*.spec.ts'],
  include: ['tests/assembly/**/*.include.ts'],
  disclude: [/node_modules/],
  async instantiate(memory, createImports, instantiate, binary) {
    return instantiate(binary, createImports({ env: { memory }, wasmap: { fn_lookup: (sw, n, nports, now) => (globalThis.wasmapFnLookup ? globalThis.wasmapFnLookup(sw, n, nports, now) : -1) } }));
  },
  outputBinary: false,
};
