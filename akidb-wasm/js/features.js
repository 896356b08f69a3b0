// WebAssembly feature detection: tiny hand-assembled modules that only validate where the engine has the
// feature. Shared by the browser loader (wasm-backend.js) and the Node entry (node.mjs); imports nothing, so
// Node can load it without the web build's glue.

// (module (func (result v128) i32.const 0 i8x16.splat i8x16.popcnt))
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98,
  11,
]);

// (module
//   (func (result v128)
//     i32.const 0 i8x16.splat                   ;; 0x41 0x00, 0xfd 0x0f
//     i32.const 0 i8x16.splat
//     i32.const 0 i8x16.splat
//     i32x4.relaxed_dot_i8x16_i7x16_add_s       ;; 0xfd 0x113 (LEB128: 0x93 0x02): tract's int8 kernel
//     i32.const 0 i8x16.splat
//     i32.const 0 i8x16.splat
//     f32x4.relaxed_madd))                      ;; 0xfd 0x105 (LEB128: 0x85 0x02): tract's f32 kernels
// Sections: type [] -> [v128]; one function of that type; code: 28-byte body (no locals, 27 bytes of code).
const RELAXED_SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 30, 1, 28, 0,
  65, 0, 253, 15, 65, 0, 253, 15, 65, 0, 253, 15, 253, 147, 2,
  65, 0, 253, 15, 65, 0, 253, 15, 253, 133, 2, 11,
]);

function validates(bytes) {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(bytes);
  } catch {
    return false;
  }
}

/** True when this engine can compile WebAssembly SIMD128. */
export function wasmSimdSupported() {
  return validates(SIMD_PROBE);
}

/** True when this engine can compile WebAssembly relaxed SIMD (Chrome 114+, Firefox 145+, Node 21+; Node
 * 20 only with --experimental-wasm-relaxed-simd). */
export function wasmRelaxedSimdSupported() {
  return validates(RELAXED_SIMD_PROBE);
}

/** True when this realm can run the `wasm-threads` build: WebAssembly shared memory that can be posted to
 * the pool's Web Workers. A page has it only when cross-origin isolated (COOP same-origin + COEP
 * require-corp) and the engine exposes SharedArrayBuffer: WebKitGTK 2.50 isolates the page and makes shared
 * memories, but has no SharedArrayBuffer global and refuses to post one to a worker ("can not be cloned"). */
export function wasmThreadsSupported() {
  if (globalThis.crossOriginIsolated !== true || typeof SharedArrayBuffer !== 'function') return false;
  if (typeof Worker !== 'function') return false;
  try {
    return new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
  } catch {
    return false;
  }
}
