// Uploads a file through the web page, reloads the page midway, picks the file again to resume, and waits
// until it is done and plays. S3 PUTs past the first `hold` are held (never answered) so that the reload
// happens with exactly `hold` chunks confirmed. The page starts without a token: the service's 401 makes it
// ask for one, the file waits for it, and the pasted token lasts through the reload (sessionStorage).
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
  // The list of uploads needs a token at once: the page asks for one.
  await page.waitForSelector('#auth:not([hidden])');
  const askedFor = await page.textContent('#auth-text');
  // A file picked meanwhile waits for the token, then goes on by itself.
  await page.setInputFiles('#file', file);
  await page.waitForSelector('.transfer[data-state="token"]');
  await page.fill('#auth-token', token);
  await page.click('#auth-form button');
  await page.waitForFunction((n) => document.querySelector('.transfer')?.dataset.done === String(n), hold,
    { timeout: 60000 });
  const beforeReload = await page.textContent('.transfer .figures');
  const chunksBeforeReload = Number(await page.getAttribute('.transfer', 'data-done'));

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
  await page.waitForFunction(() => document.querySelector('#resume-list .resume-text')?.textContent
    .includes('already received'));
  const resumeText = await page.textContent('#resume-list .resume-text');

  await page.setInputFiles('#resume-list input[type="file"]', file);
  await page.waitForSelector('.transfer[data-state="done"]', { timeout: 120000 });
  const uploadId = await page.getAttribute('.transfer', 'data-upload-id');
  const doneText = await page.textContent('.transfer .figures');
  const storedAfter = await page.evaluate(() => localStorage.getItem('upl.uploads'));
  // The finished file plays on the page; let the video show its first frame (or fail) before the picture.
  await page.click('.transfer .play');
  await page.waitForSelector('#player:not([hidden])');
  await page.waitForFunction(() => {
    const player = document.querySelector('#player');
    return player.readyState >= 2 || player.error;
  }, null, { timeout: 15000 }).catch(() => {});
  await page.waitForSelector(`#uploads-body tr[data-upload-id="${uploadId}"][data-state="completed"]`);
  await page.screenshot({ path: screenshot, fullPage: true });
  const tokenInStorage = await page.evaluate(() => sessionStorage.getItem('upl.token'));
  return {
    uploadId, chunksBeforeReload, putsAfterReload, beforeReload, resumeText, doneText, storedAfter, consoleErrors,
    askedFor, tokenKept: tokenInStorage === token, authorizedPuts,
  };
});
