// Serves the Uppy test page on 127.0.0.1: page.mjs bundled with the pinned esbuild from node_modules (no CDN),
// on an origin of its own, so every call to the companionEndpoint and to S3 is cross-origin as in a real app.
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = fileURLToPath(new URL('.', import.meta.url));

export async function bundlePage() {
  const result = await build({
    entryPoints: [`${here}page.mjs`],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    write: false,
    logLevel: 'error',
  });
  return result.outputFiles[0].contents;
}

// Resolves to { origin, close() }. UPPY_PAGE_PORT picks the port (the API under test must know the page's
// origin for CORS); by default any free one.
export async function servePage() {
  const [html, script] = await Promise.all([readFile(`${here}page.html`), bundlePage()]);
  const server = http.createServer((req, res) => {
    const path = new URL(req.url, 'http://page').pathname;
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html);
    } else if (path === '/uppy.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' }).end(script);
    } else if (path === '/favicon.ico') {
      res.writeHead(204).end();
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(Number(process.env.UPPY_PAGE_PORT || 0), '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => { server.close(resolve); server.closeAllConnections(); }),
  };
}
