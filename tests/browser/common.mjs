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

// Counts the PUTs `page` sends to storage: started so far, and in flight now.
export function watchPuts(page, s3Endpoint) {
  const puts = { started: 0, inFlight: 0 };
  const isPut = (request) => request.method() === 'PUT' && request.url().startsWith(s3Endpoint);
  page.on('request', (request) => { if (isPut(request)) { puts.started++; puts.inFlight++; } });
  page.on('requestfinished', (request) => { if (isPut(request)) puts.inFlight--; });
  page.on('requestfailed', (request) => { if (isPut(request)) puts.inFlight--; });
  return puts;
}

// Drops files from disk on `selector` as a person would: a real drop event whose DataTransfer holds them
// (read through a file input the test adds, which the page does not listen to).
export async function dropFiles(page, selector, files) {
  await page.evaluate(() => {
    const source = Object.assign(document.createElement('input'), { type: 'file', multiple: true, id: 'test-drop' });
    source.hidden = true;
    document.body.append(source);
  });
  await page.setInputFiles('#test-drop', files);
  await page.evaluate((target) => {
    const source = document.getElementById('test-drop');
    const dataTransfer = new DataTransfer();
    for (const file of source.files) dataTransfer.items.add(file);
    source.remove();
    for (const type of ['dragenter', 'dragover', 'drop']) {
      document.querySelector(target).dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer }));
    }
  }, selector);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Resolves once `check()` holds, polling every 10 ms.
export async function until(check, what, ms = 30000) {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await sleep(10);
  }
}
