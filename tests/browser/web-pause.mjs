// Pauses an upload while chunks are in flight (they stop, and no new one starts), resumes it to the end;
// then cancels another midway (the upload is aborted, and the list says so). Every PUT to storage is held
// back a moment, so that chunks are in flight when a button is pressed.
// Usage: node web-pause.mjs BASE_URL TOKEN S3_ENDPOINT SCREENSHOT PAUSED_FILE CANCELLED_FILE
import { launch, report, sleep, until, watchPuts } from './common.mjs';

const [baseUrl, token, s3Endpoint, screenshot, pausedFile, cancelledFile] = process.argv.slice(2);
const browser = await launch();
const doneChunks = (page, row) => page.evaluate((n) => Number(document.querySelectorAll('.transfer')[n]?.dataset.done ?? 0), row);

await report(browser, async () => {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  await page.route((url) => url.href.startsWith(s3Endpoint), async (route) => {
    if (route.request().method() === 'PUT') await sleep(600);
    await route.continue().catch(() => {}); // the page aborted it meanwhile
  });
  const puts = watchPuts(page, s3Endpoint);
  // Chunk reports to the service: a chunk whose PUT ended just before the pause is still reported (its bytes
  // are in S3), and counts as done once that report returns.
  const reports = watchPuts(page, `${baseUrl}/v1/uploads/`);
  await page.goto(`${baseUrl}/#token=${token}`);
  await page.waitForSelector('#library[data-loaded]');

  await page.setInputFiles('#file', pausedFile);
  await page.waitForFunction(() => Number(document.querySelector('.transfer')?.dataset.done) >= 1, null, { timeout: 60000 });
  const inFlightBeforePause = puts.inFlight;
  await page.click('.transfer .toggle');
  await page.waitForSelector('.transfer[data-state="paused"]');
  await until(() => puts.inFlight === 0, 'the PUTs in flight stop').catch(() => {});
  await until(() => reports.inFlight === 0, 'the reports in flight end').catch(() => {});
  const inFlightWhilePaused = puts.inFlight;
  const startedAtPause = puts.started;
  const doneAtPause = await doneChunks(page, 0);
  await sleep(1500);
  const startedWhilePaused = puts.started - startedAtPause;
  const doneWhilePaused = (await doneChunks(page, 0)) - doneAtPause;
  const pausedText = await page.textContent('.transfer .figures');
  await page.click('.transfer .toggle');
  await page.waitForSelector('.transfer[data-state="done"]', { timeout: 120000 });
  const pausedId = await page.getAttribute('.transfer', 'data-upload-id');

  await page.setInputFiles('#file', cancelledFile);
  await page.waitForFunction(() => Number(document.querySelectorAll('.transfer')[1]?.dataset.done) >= 1, null, { timeout: 60000 });
  const cancelled = '.transfer:nth-child(2)';
  const cancelledId = await page.getAttribute(cancelled, 'data-upload-id');
  const inFlightBeforeCancel = puts.inFlight;
  await page.click(`${cancelled} .cancel`);
  await page.waitForSelector(`${cancelled}[data-state="cancelled"]`);
  const startedAtCancel = puts.started;
  await sleep(1000);
  const startedAfterCancel = puts.started - startedAtCancel;
  await page.waitForSelector(`#uploads-body tr[data-upload-id="${cancelledId}"][data-state="aborted"]`);
  const listedStates = await page.$$eval('#uploads-body tr', (rows) => rows.map((row) => [row.dataset.uploadId, row.dataset.state]));
  const stored = await page.evaluate(() => localStorage.getItem('upl.uploads'));
  await page.screenshot({ path: screenshot, fullPage: true });
  return {
    pausedId, inFlightBeforePause, inFlightWhilePaused, startedWhilePaused, doneWhilePaused, pausedText,
    cancelledId, inFlightBeforeCancel, startedAfterCancel, listedStates, stored,
  };
});
