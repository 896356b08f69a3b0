// Debian's headless Chromium for every browser test suite (akidb-wasm, web/, tests/npm-consumers), through
// the caller's playwright-core (each suite installs its own); never a downloaded browser.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The browser binary: `$CHROMIUM`, else Debian's. */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/**
 * Launches Chromium headless with a fresh profile (deleted by `close`). `chromium` is playwright-core's
 * export; `options` are extra launchPersistentContext options (viewport, ...).
 *
 * ```js
 * import { chromium } from 'playwright-core';
 * const { context, close } = await launchChromium(chromium);
 * const page = await context.newPage();
 * await close();
 * ```
 */
export async function launchChromium(chromium, options = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'akidb-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    ...options,
  });
  const close = async () => {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, close };
}
