// Every browser engine the JS suites run in, behind one interface: Chromium (Debian's, through chromedriver),
// Firefox ESR (Debian's, through geckodriver) and WebKitGTK (Debian's MiniBrowser, through WebKitWebDriver,
// under Xvfb since MiniBrowser has no headless mode). All three speak W3C WebDriver, so one small client
// drives them the same way and a suite is written once ("one suite, every backend"). Never downloads a
// browser or a driver: the binaries are the Debian packages' (and geckodriver from crates.io).
//
//   for (const engine of enginesToTest()) {
//     const b = await launchBrowser(engine);              // fresh profile, headless
//     await b.goto(`${base}/test/page.html`);
//     const n = await b.evaluate((x) => x + 1, 41);        // the function runs in the page; promises awaited
//     console.log(b.label);                                // "WebKitGTK 2.50.6 (MiniBrowser)"
//     await b.close();
//   }
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, spawnProcess, waitForHttp } from './process.mjs';

/** The engines, in the order suites run them. */
export const ENGINES = ['chromium', 'firefox', 'webkit'];

/** `$AKIDB_BROWSERS` (comma-separated engine names) or every engine; an unknown name is an error. */
export function enginesToTest(env = process.env.AKIDB_BROWSERS) {
  if (!env) return ENGINES;
  const picked = env.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = picked.filter((e) => !ENGINES.includes(e));
  if (unknown.length) throw new Error(`AKIDB_BROWSERS: unknown engine ${unknown.join(', ')} (known: ${ENGINES.join(', ')})`);
  return picked;
}

const which = (name) =>
  (process.env.PATH ?? '')
    .split(path.delimiter)
    .map((d) => path.join(d, name))
    .find((p) => fs.existsSync(p));

function required(file, what, install) {
  if (!file || !fs.existsSync(file)) throw new Error(`${what} ${file ?? ''} is missing: ${install}`);
  return file;
}

/** Where each engine's binaries are ($CHROMIUM, $CHROMEDRIVER, $FIREFOX, $GECKODRIVER, $MINIBROWSER,
 * $WEBKITWEBDRIVER override them). */
export const BINARIES = {
  chromium: () => ({
    browser: required(process.env.CHROMIUM ?? '/usr/bin/chromium', 'chromium', 'apt-get install chromium'),
    driver: required(process.env.CHROMEDRIVER ?? which('chromedriver'), 'chromedriver', 'apt-get install chromium-driver'),
  }),
  firefox: () => ({
    browser: required(process.env.FIREFOX ?? '/usr/bin/firefox-esr', 'firefox-esr', 'apt-get install firefox-esr'),
    driver: required(process.env.GECKODRIVER ?? which('geckodriver'), 'geckodriver', 'cargo install geckodriver (akidb-wasm/tests/run.sh does)'),
  }),
  webkit: () => ({
    browser: required(
      process.env.MINIBROWSER ?? '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser',
      'MiniBrowser',
      'apt-get install webkit2gtk-driver',
    ),
    driver: required(process.env.WEBKITWEBDRIVER ?? which('WebKitWebDriver'), 'WebKitWebDriver', 'apt-get install webkit2gtk-driver'),
  }),
};

// Each engine's new-session capabilities; `profile` is a fresh temporary folder.
const CAPABILITIES = {
  chromium: (bin, profile) => ({
    browserName: 'chrome',
    'goog:chromeOptions': {
      binary: bin.browser,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        `--user-data-dir=${profile}`,
      ],
    },
  }),
  firefox: (bin, profile) => ({
    browserName: 'firefox',
    'moz:firefoxOptions': { binary: bin.browser, args: ['-headless', '-profile', profile] },
  }),
  webkit: (bin) => ({
    browserName: 'MiniBrowser',
    // --automation: MiniBrowser's automation mode (an ephemeral session, controlled by the driver).
    'webkitgtk:browserOptions': { binary: bin.browser, args: ['--automation'] },
  }),
};

/** Engine names as people write them, for labels. */
const ENGINE_NAMES = { chromium: 'Chromium', firefox: 'Firefox ESR', webkit: 'WebKitGTK' };

/** Starts Xvfb on a display it picks itself (-displayfd); resolves to { display, stop }. */
async function startXvfb() {
  const xvfb = required(process.env.XVFB ?? which('Xvfb'), 'Xvfb', 'apt-get install xvfb');
  // fd 3 carries the display number; spawned here rather than by spawnProcess, which has no fd 3.
  const child = spawn(xvfb, ['-displayfd', '3', '-screen', '0', '1280x800x24', '-nolisten', 'tcp'], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr = (stderr + c).slice(-8192)));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  try {
    const display = await new Promise((resolve, reject) => {
      let got = '';
      const timer = setTimeout(() => reject(new Error(`Xvfb reported no display within 10 s:\n${stderr}`)), 10_000);
      child.on('error', (e) => reject(new Error(`spawn ${xvfb}: ${e.message}`)));
      child.stdio[3].on('data', (chunk) => {
        got += chunk;
        if (got.includes('\n')) {
          clearTimeout(timer);
          resolve(`:${got.trim()}`);
        }
      });
      exited.then((r) => {
        clearTimeout(timer);
        reject(new Error(`Xvfb exited ${JSON.stringify(r)}:\n${stderr}`));
      });
    });
    return { display, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** A W3C WebDriver session's commands; errors name the engine, the command and the driver's message. */
class Session {
  constructor(engine, base, id, capabilities) {
    this.engine = engine;
    this.base = base;
    this.id = id;
    this.capabilities = capabilities;
  }

  async command(method, suffix, body) {
    return webdriverRequest(this.engine, method, `${this.base}/session/${this.id}${suffix}`, body);
  }
}

async function webdriverRequest(engine, method, url, body) {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${engine}: ${method} ${url}: HTTP ${res.status}, not JSON: ${text.slice(0, 500)}`);
  }
  if (!res.ok || json.value?.error) {
    const v = json.value ?? {};
    const err = new Error(`${engine}: ${v.error ?? `HTTP ${res.status}`}: ${v.message ?? text.slice(0, 500)}`);
    err.webdriver = v;
    throw err;
  }
  return json.value;
}

/**
 * Launches `engine` ('chromium', 'firefox' or 'webkit') headless with a fresh profile. Resolves to
 * { engine, name, version, label, goto(url), evaluate(fn, arg), reload(), waitForFunction(fn, opts),
 * userAgent(), close() }. `evaluate` runs `fn(arg)` in the current page (the function's source is sent; `arg`
 * and the result travel as JSON, so return plain data; a returned promise is awaited) and throws the page's
 * error message when it throws. `scriptTimeoutMs` bounds one evaluate.
 */
export async function launchBrowser(engine, { scriptTimeoutMs = 600_000 } = {}) {
  if (!ENGINES.includes(engine)) throw new Error(`unknown browser engine ${engine} (known: ${ENGINES.join(', ')})`);
  const bin = BINARIES[engine]();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), `akidb-${engine}-`));
  const cleanups = [() => fs.rmSync(profile, { recursive: true, force: true })];
  const cleanup = async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  };
  let session;
  try {
    const env = {};
    if (engine === 'webkit') {
      const xvfb = await startXvfb();
      cleanups.push(xvfb.stop);
      env.DISPLAY = xvfb.display;
    }
    const port = await freePort();
    const driver = spawnProcess(bin.driver, [`--port=${port}`], { env });
    cleanups.push(() => driver.stop());
    const base = `http://127.0.0.1:${port}`;
    await waitForHttp(`${base}/status`, { proc: driver, timeoutMs: 30_000 });
    const created = await webdriverRequest(engine, 'POST', `${base}/session`, {
      capabilities: { alwaysMatch: CAPABILITIES[engine](bin, profile) },
    }).catch((e) => {
      throw new Error(`${e.message}\n${driver.describe()} said:\n${driver.output()}`);
    });
    session = new Session(engine, base, created.sessionId, created.capabilities);
    cleanups.push(() => session.command('DELETE', '').catch(() => {}));
    await session.command('POST', '/timeouts', { script: scriptTimeoutMs, pageLoad: 120_000 });
  } catch (e) {
    await cleanup();
    throw e;
  }
  const version = session.capabilities.browserVersion ?? 'unknown';
  const name = ENGINE_NAMES[engine];
  const evaluate = (fn, arg) =>
    session.command('POST', '/execute/sync', { script: `return (${fn}).apply(null, arguments);`, args: arg === undefined ? [] : [arg] });
  return {
    engine,
    name,
    version,
    /** e.g. "Firefox ESR 153.8.0esr" or "WebKitGTK 2.50.6 (MiniBrowser)". */
    label: engine === 'webkit' ? `${name} ${version} (${session.capabilities.browserName})` : `${name} ${version}`,
    goto: (url) => session.command('POST', '/url', { url }),
    reload: () => session.command('POST', '/refresh', {}),
    evaluate,
    /** Polls `fn()` in the page until it returns something truthy (returned), or throws after `timeoutMs`. */
    async waitForFunction(fn, { timeoutMs = 60_000, intervalMs = 50 } = {}) {
      const deadline = Date.now() + timeoutMs;
      let last;
      for (;;) {
        try {
          const v = await evaluate(fn);
          if (v) return v;
          last = v;
        } catch (e) {
          // A navigation in progress can reject a script; keep polling until the deadline.
          last = e.message;
        }
        if (Date.now() > deadline) throw new Error(`${engine}: ${fn} stayed falsy for ${timeoutMs} ms (last: ${last})`);
        await new Promise((r) => setTimeout(r, intervalMs));
      }
    },
    userAgent: () => evaluate(() => navigator.userAgent),
    close: cleanup,
  };
}
