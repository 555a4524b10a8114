// Shared by the page tests: Debian's Chromium, never a downloaded one.
import { chromium } from 'playwright-core';

export async function launch() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required'],
  });
}

// Prints one JSON result line for the Rust test, whatever happens, and closes the browser.
export async function report(browser, run) {
  let result;
  try {
    result = { ok: true, ...(await run()) };
  } catch (err) {
    result = { ok: false, error: String(err && err.stack || err) };
  }
  await browser.close().catch(() => {});
  console.log(JSON.stringify(result));
}
