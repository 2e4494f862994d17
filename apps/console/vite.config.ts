import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// Served by the gateway at /ui; hashed assets under /ui/assets (cached immutably there).
export default defineConfig({
  base: '/ui/',
  plugins: [preact()],
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 2000, sourcemap: false },
});
