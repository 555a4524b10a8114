// Plays a <video> served by the API in headless Chromium, seeks, and checks that it plays on.
// Usage: node video-seek.mjs <video URL> <seek to, seconds> [bearer token]. Prints one JSON line with what
// happened. A <video> cannot send a bearer header itself: with a token, the browser adds it to every request.
import { chromium } from 'playwright-core';

const [videoUrl, seekTo, token] = [process.argv[2], Number(process.argv[3] ?? 5), process.argv[4]];
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});
const result = { requests: [] };
try {
  const page = await browser.newPage();
  if (token) await page.setExtraHTTPHeaders({ authorization: `Bearer ${token}` });
  page.on('response', (response) => {
    if (response.url().startsWith(videoUrl)) {
      result.requests.push({ range: response.request().headers()['range'] ?? null, status: response.status() });
    }
  });
  await page.setContent(`<video id="v" src="${videoUrl}" muted playsinline preload="metadata"></video>`);
  result.events = await page.evaluate(async (seekTo) => {
    const video = document.getElementById('v');
    const log = [];
    const waitFor = (name, ms = 20000) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${name} within ${ms} ms (error: ${video.error?.message})`)), ms);
      video.addEventListener(name, () => { clearTimeout(timer); resolve(); }, { once: true });
    });
    const playedPast = (t, ms = 20000) => new Promise((resolve, reject) => {
      const started = Date.now();
      const check = () => {
        if (video.currentTime > t) return resolve();
        if (Date.now() - started > ms) return reject(new Error(`stuck at ${video.currentTime}, wanted past ${t}`));
        setTimeout(check, 50);
      };
      check();
    });
    await video.play();
    await playedPast(0.5);
    log.push({ playing: video.currentTime, duration: video.duration });
    const seeked = waitFor('seeked');
    video.currentTime = seekTo;
    await seeked;
    log.push({ seeked: video.currentTime });
    await playedPast(seekTo + 0.5);
    log.push({ playingAfterSeek: video.currentTime });
    return log;
  }, seekTo);
  result.ok = true;
} catch (error) {
  result.ok = false;
  result.error = String(error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
