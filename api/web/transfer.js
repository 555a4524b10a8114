// One file's upload. Each chunk is hashed (SHA-256, WebCrypto), gets a presigned URL that binds that hash
// (asked for in batches), and goes straight to storage, a few at a time; the service records each one, then
// completes the upload. Pause aborts the chunks in flight (they go again on resume); cancel aborts the upload.
import { api, ApiError, retryDelay, sleep } from './api.js';
import { describe } from './messages.js';

const PARALLEL = 3; // chunks in flight per file
const BATCH = 12; // URLs asked for per request
const CHUNK_ATTEMPTS = 6;
const MAX_RENEWALS = 3; // fresh URLs for a chunk whose URL storage refused (expired)
const COMPLETE_ATTEMPTS = 120; // a large file can take minutes to assemble
const SPEED_WINDOW_MS = 5000;

const expand = (ranges) => ranges.flatMap(([first, last]) => Array.from({ length: last - first + 1 }, (_, i) => first + i));

async function sha256Hex(blob) {
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

const storageCode = (xml) => /<Code>([^<]{1,64})<\/Code>/.exec(xml || '')?.[1] ?? null;

// One PUT to a presigned URL with its signed headers; XHR because fetch reports no upload progress.
// Content-Length is signed too, but a browser sets it itself (exactly the Blob's size) and refuses a script
// that tries: leave it out.
function putToStorage(target, blob, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(target.method, target.url);
    for (const [name, value] of Object.entries(target.headers)) {
      if (name.toLowerCase() !== 'content-length') xhr.setRequestHeader(name, value);
    }
    const abort = () => xhr.abort();
    signal.addEventListener('abort', abort, { once: true });
    const settle = (fn, value) => { signal.removeEventListener('abort', abort); fn(value); };
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      const etag = xhr.getResponseHeader('ETag');
      if (xhr.status >= 200 && xhr.status < 300 && etag) return settle(resolve, etag);
      const ok = xhr.status >= 200 && xhr.status < 300;
      settle(reject, new ApiError({
        status: xhr.status,
        code: ok ? 'NoETag' : storageCode(xhr.responseText),
        message: ok ? "storage's answer has no readable ETag (the bucket's CORS rule must expose it)" : `storage answered ${xhr.status}`,
        storage: true,
      }));
    };
    xhr.onerror = () => settle(reject, new ApiError({ status: 0, message: 'network error', storage: true }));
    xhr.onabort = () => settle(reject, signal.reason);
    xhr.send(blob);
  });
}

// States: queued, sending, paused, completing, done, failed, token (waits for a token), cancelling, cancelled.
export class Transfer {
  // `upload`: what a previous page stored of this file's upload, to resume it. `onChange(transfer)` hears of
  // every change; `onCreated(transfer)` of the upload's creation, to store it.
  constructor(file, { upload = null, onChange = () => {}, onCreated = () => {} } = {}) {
    this.file = file;
    this.upload = upload;
    this.state = 'queued';
    this.notice = ''; // what the transfer is waiting for, or why it stopped
    this.result = null; // the completed upload
    this.error = null; // what stopped it, when it failed
    this.doneChunks = 0;
    this.confirmedBytes = 0;
    this.onChange = onChange;
    this.onCreated = onCreated;
    this.pending = null; // indices still to send; null until known
    this.inFlight = new Map(); // index -> bytes sent so far
    this.targets = new Map(); // index -> presigned URL
    this.hashes = new Map(); // index -> sha256 hex
    this.batch = null;
    this.samples = [];
    this.controller = null;
    this.createSent = false;
    // A retried create (its answer was lost) returns the same upload instead of starting a second one.
    this.idempotencyKey = crypto.randomUUID();
  }

  get name() { return this.upload?.name ?? this.file.name; }
  get size() { return this.file.size; }
  get active() { return ['sending', 'completing'].includes(this.state); }
  get sentBytes() { return this.confirmedBytes + [...this.inFlight.values()].reduce((a, b) => a + b, 0); }

  // Bytes per second over the last few seconds, and the seconds left at that pace.
  get speed() {
    const [first, last] = [this.samples[0], this.samples[this.samples.length - 1]];
    return first && last.t > first.t ? Math.max(0, (last.bytes - first.bytes) / ((last.t - first.t) / 1000)) : 0;
  }

  get eta() { return this.speed > 0 ? (this.size - this.sentBytes) / this.speed : Infinity; }

  start() {
    if (!['queued', 'paused', 'failed', 'token'].includes(this.state)) return;
    this.#run();
  }

  pause() {
    if (this.state !== 'sending' && this.state !== 'queued') return;
    this.controller?.abort(new DOMException('paused', 'AbortError'));
    this.inFlight.clear(); // what was in flight goes again on resume
    this.#set('paused', 'Paused: press Resume to send the rest.');
  }

  async cancel() {
    if (['completing', 'done', 'cancelling', 'cancelled'].includes(this.state)) return;
    const created = Boolean(this.upload) || this.createSent;
    this.controller?.abort(new DOMException('cancelled', 'AbortError'));
    this.inFlight.clear();
    this.#set('cancelling', 'Cancelling…');
    try {
      // A create whose answer never came may still have made the upload: the same key finds it.
      if (!this.upload && created) await this.#create(undefined);
      if (this.upload) await api('DELETE', `/v1/uploads/${this.upload.id}`);
      this.#set('cancelled', 'Cancelled: storage dropped what was sent.');
    } catch (err) {
      const gone = ['upload_aborted', 'upload_expired', 'upload_not_found'].includes(err.code);
      this.#set(gone ? 'cancelled' : 'failed', gone ? 'Cancelled.' : describe(err));
    }
  }

  #set(state, notice = this.notice) {
    this.state = state;
    this.notice = notice;
    this.onChange(this);
  }

  #progress() {
    const now = performance.now();
    this.samples.push({ t: now, bytes: this.sentBytes });
    while (this.samples.length > 2 && now - this.samples[0].t > SPEED_WINDOW_MS) this.samples.shift();
    this.onChange(this);
  }

  #waiting(err, ms) {
    this.notice = `${describe(err)} Retrying in ${Math.ceil(ms / 1000)} s.`;
    this.onChange(this);
  }

  async #run() {
    const controller = new AbortController();
    this.controller = controller;
    const { signal } = controller;
    this.samples = [];
    this.#set('sending', '');
    try {
      if (!this.upload) await this.#create(signal);
      if (this.pending === null && !(await this.#loadStatus(signal))) return;
      for (let round = 0; this.state !== 'done'; round++) {
        if (round > 3) throw new Error('storage keeps refusing chunks; try again later');
        await this.#sendPending(signal);
        this.#set('completing', 'Assembling the file…');
        await this.#complete(signal);
      }
    } catch (err) {
      if (signal.aborted) return; // paused or cancelled: that already set the state
      this.inFlight.clear();
      this.error = err;
      this.#set(err.status === 401 ? 'token' : 'failed', describe(err));
    }
  }

  async #create(signal) {
    this.createSent = true;
    const created = await api('POST', '/v1/uploads', {
      body: { filename: this.file.name, size: this.file.size, contentType: this.file.type || 'application/octet-stream' },
      headers: { 'idempotency-key': this.idempotencyKey },
      signal,
      onRetry: (err, ms) => this.#waiting(err, ms),
    });
    this.upload = {
      id: created.uploadId,
      name: this.file.name,
      size: this.file.size,
      lastModified: this.file.lastModified,
      chunkSize: created.chunkSize,
      totalChunks: created.totalChunks,
    };
    this.pending = new Set(expand(created.totalChunks ? [[0, created.totalChunks - 1]] : []));
    this.onCreated(this);
  }

  // What the service (checked against storage) already holds of a resumed upload; false when it is done.
  async #loadStatus(signal) {
    const status = await api('GET', `/v1/uploads/${this.upload.id}?reconcile=true`, { signal });
    if (status.state === 'completed') {
      this.#finish(status);
      return false;
    }
    this.#applyStatus(status);
    return true;
  }

  #applyStatus(status) {
    this.pending = new Set(expand(status.missingChunks));
    this.confirmedBytes = status.receivedBytes;
    this.doneChunks = this.upload.totalChunks - this.pending.size;
  }

  #finish(completed) {
    this.result = completed;
    this.confirmedBytes = this.size;
    this.doneChunks = this.upload.totalChunks;
    this.#set('done', '');
  }

  #span(index) { return Math.min(this.upload.chunkSize, this.upload.size - index * this.upload.chunkSize); }
  #slice(index) { return this.file.slice(index * this.upload.chunkSize, index * this.upload.chunkSize + this.#span(index)); }

  async #sendPending(signal) {
    const queue = [...this.pending].sort((a, b) => a - b);
    this.targets.clear(); // URLs from before a pause may have expired
    this.batch = null; // and a batch still settling belongs to the run a pause stopped
    // The first chunk that fails for good stops the others.
    const stop = new AbortController();
    signal.addEventListener('abort', () => stop.abort(signal.reason), { once: true });
    let next = 0;
    const worker = async () => {
      while (next < queue.length && !stop.signal.aborted) await this.#sendChunk(queue[next++], queue, stop.signal);
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, queue.length) }, worker)).catch((err) => {
      stop.abort(err);
      throw err;
    });
  }

  // The URL of chunk `index`, asking for it and the next few at once.
  async #target(index, queue, signal) {
    while (!this.targets.has(index)) {
      if (!this.batch) {
        const wanted = queue.slice(queue.indexOf(index)).filter((i) => !this.targets.has(i)).slice(0, BATCH);
        const batch = this.#fetchTargets(wanted, signal).finally(() => {
          if (this.batch === batch) this.batch = null;
        });
        this.batch = batch;
      }
      await this.batch;
    }
    return this.targets.get(index);
  }

  async #fetchTargets(indices, signal) {
    const chunks = [];
    for (const index of indices) {
      if (!this.hashes.has(index)) this.hashes.set(index, await sha256Hex(this.#slice(index)));
      chunks.push({ index, sha256: this.hashes.get(index) });
    }
    const { urls } = await api('POST', `/v1/uploads/${this.upload.id}/urls`, {
      body: { chunks }, signal, onRetry: (err, ms) => this.#waiting(err, ms),
    });
    for (const target of urls) this.targets.set(target.index, target);
  }

  async #sendChunk(index, queue, signal) {
    let target = await this.#target(index, queue, signal);
    let renewals = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        const etag = await putToStorage(target, this.#slice(index), (loaded) => {
          this.inFlight.set(index, loaded);
          this.#progress();
        }, signal);
        await api('PUT', `/v1/uploads/${this.upload.id}/chunks/${index}`, {
          body: { etag, sha256: this.hashes.get(index) }, signal, onRetry: (err, ms) => this.#waiting(err, ms),
        });
        break;
      } catch (err) {
        this.inFlight.delete(index);
        if (signal.aborted || !err.storage) throw err;
        if (err.status === 403 && renewals++ < MAX_RENEWALS) {
          await this.#fetchTargets([index], signal); // most likely an expired URL
          target = this.targets.get(index);
          continue;
        }
        const delay = err.status === 400 ? null : retryDelay(err, attempt);
        if (delay === null || attempt + 1 >= CHUNK_ATTEMPTS) throw err;
        this.#waiting(err, delay);
        await sleep(delay, signal);
      }
    }
    this.inFlight.delete(index);
    this.pending.delete(index);
    this.confirmedBytes += this.#span(index);
    this.doneChunks++;
    this.notice = '';
    this.#progress();
  }

  async #complete(signal) {
    try {
      const completed = await api('POST', `/v1/uploads/${this.upload.id}/complete`, {
        signal, attempts: COMPLETE_ATTEMPTS, onRetry: (err, ms) => this.#waiting(err, ms),
      });
      this.#finish(completed);
    } catch (err) {
      // Storage lacks or refused some chunks: the service takes them again; send what it misses.
      if (!['chunks_missing', 'parts_rejected', 'part_mismatch'].includes(err.code)) throw err;
      this.#applyStatus(await api('GET', `/v1/uploads/${this.upload.id}?reconcile=true`, { signal }));
      this.#set('sending', describe(err));
    }
  }
}
