// What the page says when the service refuses: an unfinished upload that was aborted meanwhile (410), a
// file whose name hides a bidi control (422), a file over the service's limit (422); and how it waits:
// a create answered 503 and a complete answered 409 completion_in_progress are retried after Retry-After.
// Usage: node web-errors.mjs BASE_URL TOKEN ABORTED_ID TOO_LARGE_FILE SMALL_FILE
import { launch, report } from './common.mjs';

const [baseUrl, token, abortedId, tooLarge, small] = process.argv.slice(2);
const browser = await launch();
const notice = (page, n) => page.textContent(`.transfer:nth-child(${n}) .notice`);

await report(browser, async () => {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  const asked = [];
  page.on('request', (request) => asked.push(request.url()));
  await page.goto(`${baseUrl}/#token=${token}`);
  // What an earlier visit left: an upload aborted since, and an id that is no UUID (never asked for).
  await page.evaluate((id) => localStorage.setItem('upl.uploads', JSON.stringify([
    { id, name: 'gone.bin', size: 10, lastModified: 0, chunkSize: 8388608, totalChunks: 1 },
    { id: '../../v1/uploads', name: 'evil.bin', size: 1, lastModified: 0 },
  ])), abortedId);
  await page.reload();
  await page.waitForFunction(() => document.querySelector('#message').textContent.includes('can no longer be resumed'));
  const gone = await page.textContent('#message');
  const askedForNonUuid = asked.some((url) => url.includes('../') || url.endsWith('/v1/uploads/v1/uploads'));

  await page.setInputFiles('#file', { name: 'invoice\u202Efdp.exe', mimeType: 'application/pdf', buffer: Buffer.from('%PDF') });
  await page.waitForSelector('.transfer:nth-child(1)[data-state="failed"]');
  const badName = await notice(page, 1);
  await page.setInputFiles('#file', tooLarge);
  await page.waitForSelector('.transfer:nth-child(2)[data-state="failed"]');
  const tooLargeText = await notice(page, 2);

  // The first create and the first complete are answered by "the service" with a retryable refusal.
  const completes = [];
  let refusedCreate = false;
  await page.route((url) => url.pathname === '/v1/uploads', (route) => {
    if (route.request().method() !== 'POST' || refusedCreate) return route.fallback();
    refusedCreate = true;
    return route.fulfill({ status: 503, headers: { 'retry-after': '1' }, contentType: 'application/json',
      body: JSON.stringify({ code: 'storage_unavailable', message: 'object storage cannot be reached' }) });
  });
  await page.route((url) => url.pathname.endsWith('/complete'), (route) => {
    completes.push(Date.now());
    if (completes.length > 1) return route.fallback();
    return route.fulfill({ status: 409, headers: { 'retry-after': '2' }, contentType: 'application/json',
      body: JSON.stringify({ code: 'completion_in_progress', message: 'another request is completing this upload' }) });
  });
  await page.evaluate(() => {
    window.notices = [];
    new MutationObserver(() => {
      const text = document.querySelector('.transfer:nth-child(3) .notice')?.textContent;
      if (text && window.notices.at(-1) !== text) window.notices.push(text);
    }).observe(document.getElementById('transfers'), { subtree: true, childList: true, characterData: true });
  });
  await page.setInputFiles('#file', small);
  await page.waitForSelector('.transfer:nth-child(3)[data-state="done"]', { timeout: 60000 });
  const notices = await page.evaluate(() => window.notices);
  return {
    gone, askedForNonUuid, badName, tooLarge: tooLargeText, notices, refusedCreate,
    completeGapMs: completes.length > 1 ? completes[1] - completes[0] : null,
  };
});
