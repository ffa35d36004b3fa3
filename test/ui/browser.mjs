// Shared set-up for the page tests: Debian's Chromium, headless, with the
// flags this machine's closed network needs (no background connections).
import { chromium } from 'playwright-core';

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
      '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}

// check throws with a message naming what was expected.
export function check(ok, what) {
  if (!ok) throw new Error(what);
}

// run calls fn(browser) and reports to the Go test: a JSON line on stdout,
// exit status 0 only when fn finished.
export async function run(fn) {
  const browser = await launch();
  try {
    const result = await fn(browser);
    console.log(JSON.stringify({ ok: true, ...result }));
  } catch (err) {
    console.log(JSON.stringify({ ok: false, error: String(err && err.stack || err) }));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
