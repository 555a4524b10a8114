// Opens the page on a finished upload with a token in the address's fragment, plays its video, seeks, and
// downloads it through the link.
// Usage: node web-playback.mjs BASE_URL UPLOAD_ID SCREENSHOT TOKEN
import { launch, report } from './common.mjs';

const [baseUrl, uploadId, screenshot, token] = process.argv.slice(2);
const browser = await launch();

await report(browser, async () => {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  // <video src> and <a href> cannot send a bearer header: until the page gets signed links, the browser
  // adds it to the file requests itself.
  await page.setExtraHTTPHeaders({ authorization: `Bearer ${token}` });
  await page.goto(`${baseUrl}/?upload=${uploadId}#token=${token}`);
  await page.waitForSelector('#player:not([hidden])');
  const addressAfterLoad = page.url();
  const tokenKept = await page.evaluate((t) => sessionStorage.getItem('upl.token') === t, token);
  const video = await page.evaluate(async () => {
    const player = document.querySelector('#player');
    const once = (event) => new Promise((resolve, reject) => {
      if (player.error) reject(new Error(`video error ${player.error.code}: ${player.error.message}`));
      setTimeout(() => reject(new Error(`no ${event} within 30 s`)), 30000);
      player.addEventListener(event, resolve, { once: true });
      player.addEventListener('error', () => reject(new Error(`video error ${player.error && player.error.code}`)),
        { once: true });
    });
    if (player.readyState < 1) await once('loadedmetadata');
    player.muted = true;
    await player.play();
    const target = player.duration * 0.75;
    const seeked = once('seeked');
    player.currentTime = target;
    await seeked;
    player.pause();
    return { duration: player.duration, target, currentTime: player.currentTime, readyState: player.readyState };
  });
  const href = await page.getAttribute('#download', 'href');
  const downloadedBytes = await page.evaluate(async (url) => (await (await fetch(url)).arrayBuffer()).byteLength, href);
  await page.screenshot({ path: screenshot, fullPage: true });
  return { video, href, downloadedBytes, addressAfterLoad, tokenKept };
});
