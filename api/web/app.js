'use strict';
// Resumable uploads from the browser. Each chunk is hashed (SHA-256, WebCrypto), gets a presigned URL that
// binds that hash, and goes straight to S3; the service only records it. The upload id is kept in
// localStorage, so after a reload the page asks the service what is missing and sends only that.
// API calls carry a bearer token: from the address's fragment (`#token=...`, which no server ever sees),
// kept in sessionStorage (this tab only), or pasted when the service answers 401.

const STORE_KEY = 'upl.upload';
const TOKEN_KEY = 'upl.token';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PARALLEL = 3; // chunks in flight
const BATCH = 12; // URLs asked for per request
const RETRIES = 5;
const MAX_RENEWALS = 3;
const PLAYER_LINK_SECONDS = 6 * 3600;

const $ = (id) => document.getElementById(id);

class HttpError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status; // 0: the network failed
    this.body = body;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const backoff = (attempt) => sleep(Math.min(8000, 300 * 2 ** attempt) * (0.75 + Math.random() / 2));
const transient = (err) => err.status === 0 || err.status === 429 || err.status >= 500;

const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
};

// Moves `#token=...` into sessionStorage and out of the address bar (and so out of history and bookmarks).
function takeTokenFromAddress() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (!fragment.has('token')) return;
  if (fragment.get('token').trim()) token.set(fragment.get('token').trim());
  fragment.delete('token');
  const rest = fragment.toString();
  history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
}

// The 401's message says what is wrong with the token (missing, expired, ...); the box asks for another.
function askForToken(reason) {
  $('auth-text').textContent = `${reason.charAt(0).toUpperCase()}${reason.slice(1)}. Paste a token to continue.`;
  $('auth').hidden = false;
  $('auth-token').focus();
}

// The service's JSON API, retrying network errors and 5xx (with the same `extraHeaders` each time).
async function api(method, path, body, extraHeaders = {}) {
  for (let attempt = 0; ; attempt++) {
    try {
      let response;
      const headers = { ...extraHeaders, ...(body ? { 'content-type': 'application/json' } : {}) };
      if (token.get()) headers.authorization = `Bearer ${token.get()}`;
      try {
        response = await fetch(path, {
          method,
          cache: 'no-store',
          headers,
          body: body ? JSON.stringify(body) : undefined,
        });
      } catch (err) {
        throw new HttpError(0, `network error: ${err.message}`);
      }
      if (response.status === 204) return null;
      const data = await response.json().catch(() => ({}));
      if (response.status === 401) askForToken(data.message || 'The service wants a token');
      if (!response.ok) throw new HttpError(response.status, data.message || response.statusText, data);
      return data;
    } catch (err) {
      if (!transient(err) || attempt >= RETRIES) throw err;
      await backoff(attempt);
    }
  }
}

async function sha256Hex(blob) {
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

// One PUT to a presigned URL, with its signed headers; XHR because fetch reports no upload progress.
// Content-Length is signed too, but a browser sets it itself (exactly the Blob's size) and refuses a script
// that tries: leave it out.
function putToS3(target, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(target.method, target.url);
    for (const [name, value] of Object.entries(target.headers)) {
      if (name.toLowerCase() !== 'content-length') xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      const etag = xhr.getResponseHeader('ETag');
      if (xhr.status >= 200 && xhr.status < 300 && etag) resolve(etag);
      else reject(new HttpError(xhr.status, `storage answered ${xhr.status}`, xhr.responseText));
    };
    xhr.onerror = () => reject(new HttpError(0, 'network error while sending a chunk'));
    xhr.send(blob);
  });
}

// Runs `work` on every item, `width` at a time.
async function pool(items, width, work) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

const expand = (ranges) => ranges.flatMap(([first, last]) => Array.from({ length: last - first + 1 }, (_, i) => first + i));

function formatBytes(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function formatSeconds(seconds) {
  if (!Number.isFinite(seconds)) return '…';
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

// An id from storage or the address is data: anything but a UUID is ignored.
const saved = {
  load: () => {
    try {
      const upload = JSON.parse(localStorage.getItem(STORE_KEY));
      return upload && UUID.test(upload.id) ? upload : null;
    } catch { return null; }
  },
  store: (value) => localStorage.setItem(STORE_KEY, JSON.stringify(value)),
  clear: () => localStorage.removeItem(STORE_KEY),
};

function say(text, isError = false) {
  $('message').textContent = text;
  $('message').className = isError ? 'error' : '';
}

function show(...ids) {
  for (const id of ['resume', 'pick', 'progress-box', 'done']) $(id).hidden = !ids.includes(id);
}

// Sends the chunks in `missing` of `file`, then completes the upload.
async function send(file, upload, missing) {
  show('progress-box');
  $('progress-name').textContent = `${upload.name} (${formatBytes(upload.size)})`;
  const span = (index) => Math.min(upload.chunkSize, upload.size - index * upload.chunkSize);
  const slice = (index) => file.slice(index * upload.chunkSize, index * upload.chunkSize + span(index));
  let confirmed = upload.size - missing.reduce((sum, index) => sum + span(index), 0);
  let done = upload.totalChunks - missing.length;
  const inFlight = new Map();
  const started = performance.now();
  const startBytes = confirmed;
  const render = () => {
    const sent = confirmed + [...inFlight.values()].reduce((a, b) => a + b, 0);
    const rate = (sent - startBytes) / ((performance.now() - started) / 1000);
    const eta = rate > 0 ? (upload.size - sent) / rate : Infinity;
    $('progress').value = upload.size ? sent / upload.size : 1;
    $('progress').dataset.done = String(done);
    $('progress-text').textContent = `${formatBytes(sent)} of ${formatBytes(upload.size)} · chunk ${done} of ` +
      `${upload.totalChunks} confirmed · ${formatBytes(rate || 0)}/s · ETA ${formatSeconds(eta)}`;
  };
  render();

  const urlsFor = async (chunks) => (await api('POST', `/v1/uploads/${upload.id}/urls`, { chunks })).urls;
  const sendChunk = async (target, sha256) => {
    const index = target.index;
    let renewals = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        const etag = await putToS3(target, slice(index), (loaded) => { inFlight.set(index, loaded); render(); });
        await api('PUT', `/v1/uploads/${upload.id}/chunks/${index}`, { etag, sha256 });
        break;
      } catch (err) {
        inFlight.delete(index);
        if (err.status === 403 && renewals++ < MAX_RENEWALS) {
          [target] = await urlsFor([{ index, sha256 }]); // expired URL: ask for a fresh one
        } else if (err.status === 400) {
          throw new Error(`${upload.name} changed while it was being sent; discard this upload and start again`);
        } else if (!transient(err) || attempt >= RETRIES) {
          throw err;
        } else {
          await backoff(attempt);
        }
      }
    }
    inFlight.delete(index);
    confirmed += span(index);
    done++;
    render();
  };

  for (let at = 0; at < missing.length; at += BATCH) {
    const chunks = [];
    for (const index of missing.slice(at, at + BATCH)) chunks.push({ index, sha256: await sha256Hex(slice(index)) });
    const hashes = new Map(chunks.map((c) => [c.index, c.sha256]));
    await pool(await urlsFor(chunks), PARALLEL, (target) => sendChunk(target, hashes.get(target.index)));
  }
  await api('POST', `/v1/uploads/${upload.id}/complete`);
  saved.clear();
  await showUpload(upload.id);
}

async function start(file) {
  say('');
  // A retried create (the answer was lost) returns the same upload instead of starting a second one.
  const created = await api('POST', '/v1/uploads', {
    filename: file.name,
    size: file.size,
    contentType: file.type || 'application/octet-stream',
  }, { 'idempotency-key': crypto.randomUUID() });
  const upload = {
    id: created.uploadId,
    name: file.name,
    size: file.size,
    lastModified: file.lastModified,
    chunkSize: created.chunkSize,
    totalChunks: created.totalChunks,
  };
  saved.store(upload);
  await send(file, upload, expand(created.totalChunks ? [[0, created.totalChunks - 1]] : []));
}

async function resume(file, upload) {
  if (file.name !== upload.name || file.size !== upload.size) {
    say(`That is not ${upload.name} (${formatBytes(upload.size)}): pick the same file to resume.`, true);
    return;
  }
  if (file.lastModified !== upload.lastModified) {
    say(`${upload.name} was modified since the upload began: discard the unfinished upload to send it again.`, true);
    return;
  }
  say('');
  const status = await api('GET', `/v1/uploads/${upload.id}?reconcile=true`);
  if (status.state === 'completed') {
    saved.clear();
    await showUpload(upload.id);
    return;
  }
  await send(file, upload, expand(status.missingChunks));
}

async function offerResume(upload) {
  show('resume');
  $('resume-text').textContent = `${upload.name} (${formatBytes(upload.size)}): checking…`;
  try {
    const status = await api('GET', `/v1/uploads/${upload.id}`);
    if (status.state === 'completed') {
      saved.clear();
      await showUpload(upload.id);
      return;
    }
    $('resume-text').textContent = `${upload.name}: ${formatBytes(status.receivedBytes)} of ` +
      `${formatBytes(upload.size)} already received. Pick the same file again to send the rest.`;
  } catch (err) {
    if (err.status === 401) {
      say(''); // the token box says it
    } else if (err.status === 404 || err.status === 410) {
      saved.clear();
      show('pick');
      say(`The unfinished upload of ${upload.name} can no longer be resumed (${err.message}); start it again.`, true);
    } else {
      say(`Cannot reach the service: ${err.message}`, true);
    }
  }
}

// A finished upload: play it if the browser can, and offer the download.
async function showUpload(id) {
  const status = await api('GET', `/v1/uploads/${id}`);
  if (status.state !== 'completed') {
    say(`Upload ${id} is ${status.state}.`, true);
    return;
  }
  show('done');
  say('Upload complete.');
  $('done-name').textContent = status.filename;
  $('done-text').textContent = `${formatBytes(status.size)} · ${status.contentType} · id ${status.uploadId}`;
  const playable = /^(video|audio)\//.test(status.contentType);
  // Both are signed links (no token needed in <video src> or <a href>): downloadUrl saves the file; the player
  // asks for an inline one that lasts long enough to watch a film and seek in it.
  if (playable) {
    const body = { expiresIn: PLAYER_LINK_SECONDS, disposition: 'inline' };
    $('player').src = (await api('POST', `/v1/files/${status.uploadId}/links`, body)).url;
  }
  $('player').hidden = !playable;
  $('download').href = status.downloadUrl;
  $('download').setAttribute('download', status.filename);
  history.replaceState(null, '', `/?upload=${status.uploadId}`);
}

const failed = (err) => {
  if (err.status === 401) return; // the token box says it
  say(err.message || String(err), true);
  const upload = saved.load();
  if (upload && err.status !== 401) offerResume(upload).then(() => say(err.message || String(err), true));
};

$('file').addEventListener('change', (event) => {
  const [file] = event.target.files;
  event.target.value = ''; // so that picking the same file again (after a refusal) is a change too
  if (file) start(file).catch(failed);
});

$('resume-file').addEventListener('change', (event) => {
  const [file] = event.target.files;
  event.target.value = '';
  const upload = saved.load();
  if (file && upload) resume(file, upload).catch(failed);
});

$('discard').addEventListener('click', async () => {
  const upload = saved.load();
  saved.clear();
  show('pick');
  say('');
  if (upload) await api('DELETE', `/v1/uploads/${upload.id}`).catch(() => {});
});

$('player').addEventListener('error', () => say('This browser cannot play the file; use Download.', true));

$('another').addEventListener('click', () => {
  history.replaceState(null, '', '/');
  $('player').removeAttribute('src');
  $('file').value = '';
  show('pick');
  say('');
});

$('auth-form').addEventListener('submit', (event) => {
  event.preventDefault();
  token.set($('auth-token').value.trim());
  $('auth-token').value = '';
  $('auth').hidden = true;
  say('');
  openFromAddress();
});

// What the address and storage ask for: a linked upload, the unfinished one, or a new file.
function openFromAddress() {
  const linked = new URLSearchParams(location.search).get('upload');
  const pending = saved.load();
  if (linked && UUID.test(linked)) showUpload(linked).catch(failed);
  else if (pending) offerResume(pending);
  else show('pick');
}

takeTokenFromAddress();
openFromAddress();
