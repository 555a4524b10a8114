// The service's JSON API as the page calls it: the bearer token (from the address's fragment, which no server
// ever sees, kept in sessionStorage: this tab only), errors that carry the service's code, and retries of what
// a retry can mend (the network, 5xx, 429, 409 completion_in_progress), never sooner than `Retry-After`.

const TOKEN_KEY = 'upl.token';

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
};

// Moves `#token=...` into sessionStorage and out of the address bar (and so out of history and bookmarks).
export function takeTokenFromAddress() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (!fragment.has('token')) return;
  if (fragment.get('token').trim()) token.set(fragment.get('token').trim());
  fragment.delete('token');
  const rest = fragment.toString();
  history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
}

// A failed call: `status` 0 when the network failed; `code` the service's (or storage's, with `storage`).
export class ApiError extends Error {
  constructor({ status, code = null, message, body = null, retryAfter = null, storage = false }) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
    this.retryAfter = retryAfter; // seconds
    this.storage = storage;
  }
}

// Seconds from a `Retry-After` header: a number of seconds or an HTTP date.
export function parseRetryAfter(value) {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, (date - Date.now()) / 1000);
}

const RETRIED_STATUSES = new Set([0, 408, 429, 500, 502, 503, 504]);

// How long to wait before trying `err`'s request again (attempt 0, 1, ...), or null when a retry cannot help.
export function retryDelay(err, attempt) {
  const retried = RETRIED_STATUSES.has(err.status) || err.code === 'completion_in_progress';
  if (!retried) return null;
  const backoff = Math.min(8000, 300 * 2 ** attempt) * (0.75 + Math.random() / 2);
  return Math.max(backoff, (err.retryAfter ?? 0) * 1000);
}

// Waits `ms`, or rejects at once when `signal` aborts (a pause or a cancel).
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
  });
}

let unauthorized = () => {};

// `handler(err)` is told of every 401, so the page can ask for a token.
export function onUnauthorized(handler) {
  unauthorized = handler;
}

async function send(method, path, body, headers, signal) {
  const all = { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) };
  if (token.get()) all.authorization = `Bearer ${token.get()}`;
  let response;
  try {
    response = await fetch(path, { method, cache: 'no-store', headers: all, body: body && JSON.stringify(body), signal });
  } catch (err) {
    if (signal?.aborted) throw err;
    throw new ApiError({ status: 0, message: `network error: ${err.message}` });
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (response.ok) return data;
  throw new ApiError({
    status: response.status,
    code: data?.code ?? null,
    message: data?.message || response.statusText,
    body: data,
    retryAfter: parseRetryAfter(response.headers.get('retry-after')),
  });
}

// One call of the API, retried while a retry can help (the same headers each time, so an Idempotency-Key
// stays the key). `onRetry(err, ms)` hears of each wait; `attempts` bounds them.
export async function api(method, path, { body, headers = {}, signal, onRetry, attempts = 6 } = {}) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await send(method, path, body, headers, signal);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (err.status === 401) unauthorized(err);
      const delay = retryDelay(err, attempt);
      if (delay === null || attempt + 1 >= attempts) throw err;
      onRetry?.(err, delay);
      await sleep(delay, signal);
    }
  }
}
