// The same app with vite-plugin-wasm doing the .wasm ES-module import instead of Vite's own support:
// the config Vite 7 needs (checked by hand with 7.3.8; with Vite 8 the plugin still works and takes over).
import { defineConfig } from 'vite';
import wasm from 'vite-plugin-wasm';

export default defineConfig({
  plugins: [wasm()],
  build: { outDir: 'dist/wasm-plugin' },
});
