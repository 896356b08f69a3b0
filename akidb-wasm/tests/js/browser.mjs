// Headless Chromium (Debian's /usr/bin/chromium) through playwright-core; never downloads a browser.
import { chromium } from 'playwright-core';
import { launchChromium } from '../../../tests/support/chromium.mjs';

export { CHROMIUM } from '../../../tests/support/chromium.mjs';

export function launch() {
  return launchChromium(chromium);
}

export async function openPage(context, base, logs = []) {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  await page.goto(`${base}/test/page.html`);
  await page.waitForFunction(() => window.ready === true);
  return page;
}
