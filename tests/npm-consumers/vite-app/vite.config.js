// wasm-bindgen's bundler target imports its .wasm as an ES module (`import * as wasm from
// "./akidb_wasm_bg.wasm"`, the WebAssembly/ESM integration proposal). Vite 8 does that by itself: no
// plugin. (Vite 7 fails without vite-plugin-wasm: vite.config.wasm-plugin.js.) The glue's top-level
// await is fine for every browser Vite 8 targets by default, so vite-plugin-top-level-await isn't needed.
import { defineConfig } from 'vite';

export default defineConfig({
  build: { outDir: 'dist/native' },
});
