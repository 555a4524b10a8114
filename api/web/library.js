// The user's uploads from GET /v1/uploads (newest first, a page at a time, filtered by state), each with its
// state and, once completed, its signed download link and a player or viewer for what a browser shows.
import { api } from './api.js';
import { $, el, say } from './dom.js';
import { describe, formatBytes } from './messages.js';

const PAGE_SIZE = 20;
const PLAYER_LINK_SECONDS = 6 * 3600; // long enough to watch a film and seek in it
const STATE_WORDS = {
  uploading: 'in progress', completing: 'assembling', completed: 'completed', aborted: 'cancelled', expired: 'expired',
};

let cursor = null;

// A link from the service, used only when it is http(s) (never `javascript:` or the like).
function safeUrl(value) {
  try {
    const url = new URL(value, location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch { return null; }
}

const viewable = (type) => (/^(video|audio)\//.test(type) ? 'media' : /^image\//.test(type) ? 'image' : null);

function libraryRow(item) {
  const actions = el('td', { class: 'actions' });
  const link = item.state === 'completed' ? safeUrl(item.downloadUrl) : null;
  if (link) actions.append(el('a', { class: 'button download', href: link, download: item.filename }, 'Download'));
  const kind = item.state === 'completed' ? viewable(item.contentType) : null;
  if (kind) {
    actions.append(el('button', { type: 'button', class: 'secondary play', 'aria-label': `Show ${item.filename}`,
      onclick: () => showFile(item.uploadId) }, kind === 'image' ? 'View' : 'Play'));
  }
  const known = Object.hasOwn(STATE_WORDS, item.state);
  const corrupt = item.verification?.state === 'corrupt';
  const state = el('span', { class: known ? `state state-${item.state}` : 'state' }, known ? STATE_WORDS[item.state] : item.state);
  // An upload made with Uppy says its size only when it completes: until then, the bytes seen so far.
  const unsized = item.size === null || item.size === undefined;
  const received = unsized ? formatBytes(item.receivedBytes)
    : item.size ? `${Math.floor((100 * item.receivedBytes) / item.size)}%` : '100%';
  return el('tr', { 'data-upload-id': item.uploadId, 'data-state': item.state },
    el('td', { class: 'name' }, item.filename),
    el('td', {}, state, corrupt ? el('span', { class: 'state state-corrupt' }, 'differs from its SHA-256') : null),
    el('td', { class: 'num' }, unsized ? 'not known yet' : formatBytes(item.size)),
    el('td', { class: 'num' }, received),
    el('td', {}, el('time', { datetime: item.createdAt }, new Date(item.createdAt).toLocaleString())),
    actions);
}

async function loadPage(more) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if ($('filter').value) query.set('state', $('filter').value);
  if (more && cursor) query.set('cursor', cursor);
  try {
    const page = await api('GET', `/v1/uploads?${query}`);
    if (!more) $('uploads-body').replaceChildren();
    $('uploads-body').append(...page.uploads.map(libraryRow));
    cursor = page.nextCursor;
    $('more').hidden = !cursor;
    $('library-empty').hidden = $('uploads-body').children.length > 0;
    $('library').dataset.loaded = String(Date.now());
  } catch (err) {
    if (err.status !== 401) say(`Your uploads cannot be listed: ${describe(err)}`, true);
  }
}

let refreshing = null;

// Reloads the first page; calls that come while one is due are folded into it.
export function refreshList() {
  refreshing ??= new Promise((resolve) => setTimeout(resolve, 200)).then(() => {
    refreshing = null;
    return loadPage(false);
  });
  return refreshing;
}

// An inline signed link for the player; a service that grants shorter links says how long, and gets asked so.
async function inlineLink(id) {
  const body = { expiresIn: PLAYER_LINK_SECONDS, disposition: 'inline' };
  try {
    return (await api('POST', `/v1/files/${id}/links`, { body })).url;
  } catch (err) {
    if (err.code !== 'invalid_expires_in' || !err.body?.maxExpiresIn) throw err;
    return (await api('POST', `/v1/files/${id}/links`, { body: { ...body, expiresIn: err.body.maxExpiresIn } })).url;
  }
}

function closeViewer() {
  $('viewer').hidden = true;
  $('player').pause();
  $('player').removeAttribute('src');
  $('player').load();
  $('preview').removeAttribute('src');
  history.replaceState(null, '', '/');
}

// A finished upload: play it (or show the picture) when the browser can, and offer the download.
export async function showFile(id) {
  try {
    const status = await api('GET', `/v1/uploads/${id}`);
    if (status.state !== 'completed') {
      say(`${status.filename} is ${STATE_WORDS[status.state] ?? status.state}: only completed uploads can be shown.`, true);
      return;
    }
    closeViewer();
    $('viewer-name').textContent = status.filename;
    $('viewer-text').textContent = `${formatBytes(status.size)} · ${status.contentType} · id ${status.uploadId}`;
    const kind = viewable(status.contentType);
    // Both are signed links (no token needed in <video src> or <a href>).
    const inline = kind ? safeUrl(await inlineLink(status.uploadId)) : null;
    if (inline) (kind === 'media' ? $('player') : $('preview')).src = inline;
    $('player').hidden = !inline || kind !== 'media';
    $('preview').hidden = !inline || kind !== 'image';
    $('preview').alt = status.filename;
    $('download').href = safeUrl(status.downloadUrl) ?? '#';
    $('download').setAttribute('download', status.filename);
    $('viewer').hidden = false;
    history.replaceState(null, '', `/?upload=${status.uploadId}`);
    $('viewer').scrollIntoView({ block: 'nearest' });
  } catch (err) {
    if (err.status !== 401) say(describe(err), true);
  }
}

export function startLibrary() {
  $('refresh').addEventListener('click', () => loadPage(false));
  $('filter').addEventListener('change', () => loadPage(false));
  $('more').addEventListener('click', () => loadPage(true));
  $('viewer-close').addEventListener('click', closeViewer);
  $('player').addEventListener('error', () => {
    if ($('player').getAttribute('src')) say('This browser cannot play the file; use Download.', true);
  });
  loadPage(false);
}
