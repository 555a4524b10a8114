// Drops several files on the page at once, waits until each is done, then checks the list of uploads: each
// file listed completed, with a link that downloads it (followed without a token).
// Usage: node web-drop.mjs BASE_URL TOKEN SCREENSHOT FILE...
import { dropFiles, launch, report } from './common.mjs';

const [baseUrl, token, screenshot, ...files] = process.argv.slice(2);
const browser = await launch();

await report(browser, async () => {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  await page.goto(`${baseUrl}/#token=${token}`);
  await page.waitForSelector('#library[data-loaded]');
  // The most transfers sending at the same moment.
  await page.evaluate(() => {
    window.mostSending = 0;
    new MutationObserver(() => {
      const sending = document.querySelectorAll('.transfer[data-state="sending"]').length;
      window.mostSending = Math.max(window.mostSending, sending);
    }).observe(document.getElementById('transfers'), { subtree: true, childList: true, attributes: true });
  });
  await dropFiles(page, '#drop', files);
  await page.waitForFunction((n) => document.querySelectorAll('.transfer[data-state="done"]').length === n,
    files.length, { timeout: 120000 });
  const transfers = await page.$$eval('.transfer', (rows) => rows.map((row) => ({
    name: row.querySelector('.name').textContent, uploadId: row.dataset.uploadId, state: row.dataset.state,
    figures: row.querySelector('.figures').textContent,
  })));
  const ids = transfers.map((t) => t.uploadId);
  await page.waitForFunction((wanted) => wanted.every((id) =>
    document.querySelector(`#uploads-body tr[data-upload-id="${id}"][data-state="completed"]`)), ids);
  const listed = await page.$$eval('#uploads-body tr', (rows) => rows.map((row) => ({
    uploadId: row.dataset.uploadId, state: row.dataset.state, name: row.querySelector('.name').textContent,
    stateText: row.querySelector('.state').textContent, href: row.querySelector('a.download')?.href ?? null,
  })));
  const downloads = await page.evaluate((links) => Promise.all(links.map(async (href) => {
    const response = await fetch(href, { credentials: 'omit' });
    const bytes = await response.arrayBuffer();
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    return { status: response.status, size: bytes.byteLength, sha256: Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('') };
  })), listed.map((row) => row.href));
  const mostSending = await page.evaluate(() => window.mostSending);
  await page.screenshot({ path: screenshot, fullPage: true });
  return { transfers, listed, downloads, mostSending };
});
