// Uploads through the real Uppy (@uppy/core + @uppy/aws-s3, pinned) in headless Chromium against a
// Companion-compatible companionEndpoint: SMALL_FILE on Uppy's default path (a presigned POST policy, as for every
// file up to 100 MiB), then MULTIPART_FILE with `shouldUseMultipart: true`. With HOLD > 0 the multipart upload is
// paused once part HOLD is in S3, the page is reloaded, and the upload resumes the way Uppy resumes: Golden
// Retriever restores the file's state (its blob only up to 10 MiB, so a larger file is picked again, as a user
// would), then listParts, then only the missing parts. No request is intercepted, so every CORS preflight is
// answered by the real servers (a Playwright route would answer them itself). Prints one JSON line.
// Usage: node uppy-upload.mjs COMPANION_ENDPOINT S3_ENDPOINT SMALL_FILE MULTIPART_FILE [HOLD] [CHUNK_BYTES]
// Env: UPPY_TIMEOUT_MS (per upload, default 120000), UPPY_DEBUG=1 (Uppy's debug log on stderr).
import { launch, report } from './common.mjs';
import { servePage } from './uppy/serve.mjs';

const [endpoint, s3Endpoint, smallFile, multipartFile, holdArg = '0', chunkArg = ''] = process.argv.slice(2);
const hold = Number(holdArg);
const debug = process.env.UPPY_DEBUG === '1';
const browser = await launch();

// Every request the page sends to the companionEndpoint (path and query as sent, after the endpoint) and to S3.
function watch(page) {
  const seen = { companion: [], s3: [], failed: [], consoleErrors: [] };
  page.on('response', (response) => {
    const request = response.request();
    const line = `${response.status()} ${request.method()}`;
    const body = request.postData();
    if (request.url().startsWith(endpoint)) seen.companion.push(`${line} ${request.url().slice(endpoint.length)}${body ? ` ${body}` : ''}`);
    else if (request.url().startsWith(s3Endpoint)) seen.s3.push(`${line} ${new URL(request.url()).pathname}`);
  });
  page.on('requestfailed', (request) => seen.failed.push(`${request.method()} ${request.url()} ${request.failure()?.errorText}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') seen.consoleErrors.push(msg.text());
    if (debug) console.error(`[page] ${msg.text()}`);
  });
  page.on('pageerror', (err) => seen.consoleErrors.push(String(err)));
  return seen;
}

// Which Companion route a logged call ("STATUS METHOD /s3/... [BODY]") went to.
function route(line) {
  const [, method, target] = line.split(' ');
  const path = target.split('?')[0];
  if (path === '/s3/params') return 'params';
  if (path === '/s3/multipart') return 'create';
  if (/^\/s3\/multipart\/[^/]+\/complete$/.test(path)) return 'complete';
  if (/^\/s3\/multipart\/[^/]+\/batch$/.test(path)) return 'batch';
  if (/^\/s3\/multipart\/[^/]+\/[^/]+$/.test(path)) return 'sign';
  if (/^\/s3\/multipart\/[^/]+$/.test(path)) return method === 'DELETE' ? 'abort' : 'listParts';
  return 'other';
}

// Takes what was seen so far and starts afresh, so each phase reports its own requests.
function drain(seen) {
  const taken = { companion: seen.companion.splice(0), s3: seen.s3.splice(0), failed: seen.failed.splice(0) };
  taken.routes = {};
  for (const line of taken.companion) taken.routes[route(line)] = (taken.routes[route(line)] || 0) + 1;
  taken.s3Posts = taken.s3.filter((line) => line.split(' ')[1] === 'POST').length;
  taken.s3Puts = taken.s3.filter((line) => line.split(' ')[1] === 'PUT').length;
  return taken;
}

async function open(page, params) {
  const query = new URLSearchParams({ endpoint, ...params, ...(debug ? { debug: '1' } : {}) });
  await page.goto(`${site.origin}/?${query}`);
  await page.waitForFunction(() => window.harness?.ready);
}

// Resolves once Uppy reports `count` successes, and throws on the first upload error.
async function settled(page, count, timeout = Number(process.env.UPPY_TIMEOUT_MS || 120000)) {
  await page.waitForFunction((n) => window.harness.successes.length >= n || window.harness.errors.length > 0,
    count, { timeout });
  const { successes, errors } = await page.evaluate(() => ({ successes: window.harness.successes,
    errors: window.harness.errors }));
  if (errors.length) throw new Error(`Uppy reported: ${JSON.stringify(errors)}`);
  return successes;
}

// The uploadId Golden Retriever has saved for the next page load (it saves throttled, so not at once).
async function persisted(page) {
  for (let tries = 0; tries < 50; tries++) {
    const uploadId = await page.evaluate(() => window.harness.persistedUploadId());
    if (uploadId) return uploadId;
    await page.waitForTimeout(200);
  }
  throw new Error('Golden Retriever saved no s3Multipart state within 10 s');
}

let site;
let page;
let seen;
await report(browser, async () => {
  try {
    site = await servePage();
    const context = await browser.newContext();
    page = await context.newPage();
    seen = watch(page);

    await open(page, {});
    await page.setInputFiles('#file', smallFile);
    const [postResult] = await settled(page, 1);
    const post = { ...postResult, ...drain(seen) };

    const multipartParams = { multipart: '1', ...(chunkArg ? { chunk: chunkArg } : {}) };
    if (hold > 0) multipartParams.pauseAfter = String(hold);
    await open(page, multipartParams);
    drain(seen);
    await page.setInputFiles('#file', multipartFile);
    if (hold === 0) {
      const [result] = await settled(page, 1);
      const parts = await page.evaluate(() => window.harness.parts);
      return { post, multipart: { ...result, parts, ...drain(seen) }, consoleErrors: seen.consoleErrors };
    }

    await page.waitForFunction((n) => window.harness.parts.length >= n || window.harness.errors.length > 0, hold,
      { timeout: 120000 });
    await settled(page, 0);
    const uploadId = await persisted(page);
    const partsBeforeReload = await page.evaluate(() => window.harness.parts);
    const beforeReload = drain(seen);

    await page.reload();
    await page.waitForFunction(() => window.harness?.ready && window.harness.restored !== null, null, { timeout: 15000 });
    const restored = await page.evaluate(() => window.harness.restored);
    const pickedAgain = restored.some((file) => file.isGhost);
    if (pickedAgain) {
      await page.setInputFiles('#file', multipartFile);
      await page.waitForFunction(() => Object.values(window.uppy.getState().files).every((file) => !file.isGhost));
    }
    await page.evaluate(() => window.harness.confirmRestore());
    const [result] = await settled(page, 1);
    const partsAfterReload = await page.evaluate(() => window.harness.parts);
    const afterReload = drain(seen);
    return {
      post,
      multipart: { ...result, uploadId, partsBeforeReload, partsAfterReload, restored, pickedAgain, beforeReload, afterReload },
      consoleErrors: seen.consoleErrors,
    };
  } catch (err) {
    // What the page and the servers did up to the failure, for whoever reads the test's output.
    const harness = await page?.evaluate(() => ({ ...window.harness, uppy: window.uppy?.getState().files }))
      .catch(() => null);
    throw new Error(`${err.message}\nseen: ${JSON.stringify(seen)}\nharness: ${JSON.stringify(harness)}`, { cause: err });
  } finally {
    await site?.close();
  }
});
