// Every error wasmap raises on purpose is a WasmapError: a stable code for programs,
// a message that says what went wrong and what to do about it, for people.
export class WasmapError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'WasmapError';
    this.code = code;
  }
}
