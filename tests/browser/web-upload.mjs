// Uploads a file through the web page, reloads the page midway, picks the file again to resume, and
// waits for the finished page. S3 PUTs past the first `hold` are held (never answered) so that the reload
// happens with exactly `hold` chunks confirmed. The page starts without a token: the service's 401 makes it
// ask for one, and the pasted token lasts through the reload (sessionStorage).
// Usage: node web-upload.mjs BASE_URL FILE S3_ENDPOINT SCREENSHOT HOLD TOKEN
import { launch, report } from './common.mjs';

const [baseUrl, file, s3Endpoint, screenshot, holdArg, token] = process.argv.slice(2);
const hold = Number(holdArg);
const browser = await launch();

await report(browser, async () => {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  const consoleErrors = [];
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(msg.text()); });
  const toS3 = (url) => url.startsWith(s3Endpoint);

  // Held requests never reach S3: the reload cancels them in the browser. (Unrouting first would let
  // Playwright continue them, and S3 would get those chunks after all.)
  let putsBeforeReload = 0;
  let released = false;
  const held = [];
  await page.route((url) => toS3(url.href), (route) => {
    if (!released && route.request().method() === 'PUT' && ++putsBeforeReload > hold) {
      held.push(route);
      return;
    }
    route.continue();
  });

  const authorizedPuts = [];
  page.on('request', (request) => {
    if (toS3(request.url()) && request.headers().authorization) authorizedPuts.push(request.url());
  });
  await page.goto(`${baseUrl}/`);
  await page.setInputFiles('#file', file);
  await page.waitForSelector('#auth:not([hidden])');
  const askedFor = await page.textContent('#auth-text');
  await page.fill('#auth-token', token);
  await page.click('#auth-form button');
  await page.setInputFiles('#file', file);
  await page.waitForFunction((n) => document.querySelector('#progress').dataset.done === String(n), hold,
    { timeout: 60000 });
  const beforeReload = await page.textContent('#progress-text');
  const chunksBeforeReload = Number(await page.getAttribute('#progress', 'data-done'));

  let putsAfterReload = 0;
  let reloaded = false;
  page.on('request', (request) => {
    if (reloaded && request.method() === 'PUT' && toS3(request.url())) putsAfterReload++;
  });
  await page.reload();
  reloaded = true;
  released = true;
  for (const route of held) await route.abort().catch(() => {});
  await page.waitForSelector('#resume:not([hidden])');
  await page.waitForFunction(() => document.querySelector('#resume-text').textContent.includes('already received'));
  const resumeText = await page.textContent('#resume-text');

  await page.setInputFiles('#resume-file', file);
  await page.waitForSelector('#done:not([hidden])', { timeout: 120000 });
  const uploadId = new URL(page.url()).searchParams.get('upload');
  const doneText = await page.textContent('#done-text');
  const storedAfter = await page.evaluate(() => localStorage.getItem('upl.upload'));
  // Let the video show its first frame (or fail) before the picture.
  await page.waitForFunction(() => {
    const player = document.querySelector('#player');
    return player.hidden || player.readyState >= 2 || player.error;
  }, null, { timeout: 15000 }).catch(() => {});
  await page.screenshot({ path: screenshot, fullPage: true });
  const tokenInStorage = await page.evaluate(() => sessionStorage.getItem('upl.token'));
  return {
    uploadId, chunksBeforeReload, putsAfterReload, beforeReload, resumeText, doneText, storedAfter, consoleErrors,
    askedFor, tokenKept: tokenInStorage === token, authorizedPuts,
  };
});
