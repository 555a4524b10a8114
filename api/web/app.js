// The page: files dropped or picked become transfers (several at once, each with its progress, speed, time
// left, pause/resume and cancel). Unfinished uploads are remembered in localStorage: after a reload the page
// shows what the service holds and asks for the same file again. Below, the user's uploads (library.js).
// Text from the service or a file only ever goes in as text (textContent), never as markup.
import { api, onUnauthorized, takeTokenFromAddress, token } from './api.js';
import { $, el, say } from './dom.js';
import { refreshList, showFile, startLibrary } from './library.js';
import { describe, formatBytes, formatDuration } from './messages.js';
import { Transfer } from './transfer.js';

const SAVED_KEY = 'upl.uploads';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const FILES_AT_ONCE = 2;
const GONE = ['upload_aborted', 'upload_expired', 'upload_lost', 'upload_not_found'];

// Unfinished uploads, kept across reloads. What storage holds is data: only entries with a UUID id are used.
const saved = {
  all() {
    try {
      const list = JSON.parse(localStorage.getItem(SAVED_KEY));
      return Array.isArray(list) ? list.filter((u) => u && typeof u.id === 'string' && UUID.test(u.id)) : [];
    } catch { return []; }
  },
  put(upload) {
    localStorage.setItem(SAVED_KEY, JSON.stringify([...saved.all().filter((u) => u.id !== upload.id), upload]));
  },
  drop(id) {
    localStorage.setItem(SAVED_KEY, JSON.stringify(saved.all().filter((u) => u.id !== id)));
  },
  // The page before this one kept one upload under another key: it is resumed like the others.
  adoptSingle() {
    try {
      const single = JSON.parse(localStorage.getItem('upl.upload'));
      if (single && typeof single.id === 'string' && UUID.test(single.id)) saved.put(single);
    } catch { /* nothing usable */ }
    localStorage.removeItem('upl.upload');
  },
};

// --- Transfers ---------------------------------------------------------------------------------------------

const transfers = [];
const rows = new Map(); // transfer -> its row on the page

function schedule() {
  let running = transfers.filter((t) => t.active || t.state === 'cancelling').length;
  for (const transfer of transfers) {
    if (transfer.state === 'queued' && running < FILES_AT_ONCE) {
      transfer.start();
      running++;
    }
  }
}

function figures(t) {
  const of = `${formatBytes(t.sentBytes)} of ${formatBytes(t.size)}`;
  const chunks = `chunk ${t.doneChunks} of ${t.upload ? t.upload.totalChunks : '…'}`;
  switch (t.state) {
    case 'queued': return `${formatBytes(t.size)} · waits for a free slot`;
    case 'sending': {
      const speed = t.speed ? `${formatBytes(t.speed)}/s` : '…/s';
      return `${of} · ${chunks} · ${speed} · ${formatDuration(t.eta)} left`;
    }
    case 'paused': return `${of} · ${chunks} · paused`;
    case 'completing': return `${formatBytes(t.size)} sent · assembling`;
    case 'done': return `${formatBytes(t.size)} · done`;
    case 'cancelling': case 'cancelled': return `${formatBytes(t.size)} · cancelled`;
    default: return `${of} · stopped`;
  }
}

// The row of one transfer; `update` redraws it at most every 150 ms, `render` at once.
function transferRow(t) {
  const progress = el('progress', { max: 1, value: 0, 'aria-label': `${t.name}: progress` });
  const text = el('p', { class: 'figures' });
  const notice = el('p', { class: 'notice' });
  const toggle = el('button', { type: 'button', class: 'secondary toggle', onclick: () => {
    if (t.state === 'sending' || t.state === 'queued') t.pause();
    else t.start();
    schedule();
  } });
  const cancel = el('button', { type: 'button', class: 'secondary cancel', 'aria-label': `Cancel ${t.name}`,
    onclick: () => t.cancel() }, 'Cancel');
  const open = el('a', { class: 'button open', hidden: true }, 'Download');
  const play = el('button', { type: 'button', class: 'secondary play', hidden: true,
    onclick: () => showFile(t.upload.id) }, 'Play');
  const root = el('li', { class: 'transfer' },
    el('div', { class: 'row-head' }, el('span', { class: 'name' }, t.name)),
    progress, text, notice, el('div', { class: 'actions' }, toggle, cancel, open, play));
  const render = () => {
    root.dataset.state = t.state;
    root.dataset.done = String(t.doneChunks);
    if (t.upload) root.dataset.uploadId = t.upload.id;
    progress.value = t.state === 'done' || !t.size ? Number(t.state === 'done') : t.sentBytes / t.size;
    text.textContent = figures(t);
    notice.textContent = t.notice;
    notice.classList.toggle('error', t.state === 'failed' || t.state === 'token');
    const resumable = ['paused', 'failed', 'token'].includes(t.state);
    toggle.hidden = !resumable && !['queued', 'sending'].includes(t.state);
    toggle.textContent = t.state === 'failed' ? 'Retry' : resumable ? 'Resume' : 'Pause';
    toggle.setAttribute('aria-label', `${toggle.textContent} ${t.name}`);
    cancel.hidden = ['completing', 'done', 'cancelling', 'cancelled'].includes(t.state);
    open.hidden = t.state !== 'done';
    play.hidden = t.state !== 'done' || !/^(video|audio|image)\//.test(t.file.type);
    if (t.state === 'done') {
      open.href = t.result.downloadUrl;
      open.setAttribute('download', t.name);
    }
  };
  let timer = null;
  const update = () => { timer ??= setTimeout(() => { timer = null; render(); }, 150); };
  return { root, render, update };
}

function updateTitle() {
  const active = transfers.filter((t) => t.active);
  const [sent, size] = active.reduce(([s, z], t) => [s + t.sentBytes, z + t.size], [0, 0]);
  document.title = active.length && size ? `${Math.floor((100 * sent) / size)}% · Resumable upload` : 'Resumable upload';
}

function changed(t) {
  updateTitle();
  const row = rows.get(t);
  if (t.state === row.shownState) return row.update();
  row.shownState = t.state;
  row.render();
  const over = t.state === 'done' || t.state === 'cancelled' || (t.state === 'failed' && GONE.includes(t.error?.code));
  if (over && t.upload) saved.drop(t.upload.id);
  if (['done', 'cancelled', 'failed'].includes(t.state)) refreshList();
  schedule();
}

function startTransfer(file, upload = null) {
  const transfer = new Transfer(file, { upload, onChange: changed, onCreated: (t) => saved.put(t.upload) });
  const row = transferRow(transfer);
  rows.set(transfer, row);
  transfers.push(transfer);
  $('transfers').append(row.root);
  $('transfers-box').hidden = false;
  row.render();
  schedule();
}

const sameFile = (file, upload) =>
  file.name === upload.name && file.size === upload.size && file.lastModified === upload.lastModified;

// Each file its own upload; one that an unfinished upload was made of resumes that upload instead.
function addFiles(files) {
  say('');
  for (const file of files) {
    const busy = new Set(transfers.filter((t) => t.upload && t.state !== 'cancelled').map((t) => t.upload.id));
    const unfinished = saved.all().find((u) => !busy.has(u.id) && sameFile(file, u));
    if (unfinished) document.querySelector(`#resume-list [data-upload-id="${unfinished.id}"]`)?.remove();
    startTransfer(file, unfinished ?? null);
  }
  $('resume').hidden = !$('resume-list').children.length;
}

// --- Unfinished uploads after a reload ------------------------------------------------------------------

function resumeWith(file, upload, text, row) {
  if (file.name !== upload.name || file.size !== upload.size) {
    text.textContent = `That is not ${upload.name} (${formatBytes(upload.size)}): pick the same file to resume.`;
  } else if (file.lastModified !== upload.lastModified) {
    text.textContent = `${upload.name} was modified since the upload began: discard this upload to send it anew.`;
  } else {
    row.remove();
    $('resume').hidden = !$('resume-list').children.length;
    startTransfer(file, upload);
  }
}

function resumeRow(upload) {
  const text = el('span', { class: 'resume-text' }, `${upload.name} (${formatBytes(upload.size)}): checking…`);
  const input = el('input', { type: 'file', class: 'visually-hidden', onchange: (event) => {
    const [file] = event.target.files;
    event.target.value = ''; // so that picking the same file again (after a refusal) is a change too
    if (file) resumeWith(file, upload, text, row);
  } });
  const row = el('li', { class: 'resumable', 'data-upload-id': upload.id }, text,
    el('div', { class: 'actions' },
      el('label', { class: 'button' }, 'Pick the file', input),
      el('button', { type: 'button', class: 'secondary discard', onclick: () => {
        saved.drop(upload.id);
        row.remove();
        $('resume').hidden = !$('resume-list').children.length;
        api('DELETE', `/v1/uploads/${upload.id}`).catch(() => {}).then(refreshList);
      } }, 'Discard')));
  return { row, text };
}

function offerResumes() {
  const busy = new Set(transfers.filter((t) => t.upload).map((t) => t.upload.id));
  $('resume-list').replaceChildren();
  for (const upload of saved.all().filter((u) => !busy.has(u.id))) {
    const { row, text } = resumeRow(upload);
    $('resume-list').append(row);
    api('GET', `/v1/uploads/${upload.id}`).then((status) => {
      if (status.state === 'completed') {
        saved.drop(upload.id);
        row.remove();
      } else {
        text.textContent = `${upload.name}: ${formatBytes(status.receivedBytes)} of ${formatBytes(upload.size)} ` +
          'already received. Drop or pick the same file to send the rest.';
      }
    }).catch((err) => {
      if (GONE.includes(err.code)) {
        saved.drop(upload.id);
        row.remove();
        say(`The unfinished upload of ${upload.name} can no longer be resumed: ${describe(err)}`, true);
      } else {
        text.textContent = `${upload.name}: ${describe(err)}`;
      }
    }).finally(() => { $('resume').hidden = !$('resume-list').children.length; });
  }
  $('resume').hidden = !$('resume-list').children.length;
}

// --- Token, picking and dropping -------------------------------------------------------------------------

onUnauthorized((err) => {
  $('auth-text').textContent = `${describe(err)}. Paste a token to continue.`;
  $('auth').hidden = false;
  $('auth-token').focus();
});

$('auth-form').addEventListener('submit', (event) => {
  event.preventDefault();
  token.set($('auth-token').value.trim());
  $('auth-token').value = '';
  $('auth').hidden = true;
  say('');
  for (const transfer of transfers.filter((t) => t.state === 'token')) transfer.start();
  offerResumes();
  refreshList();
});

$('file').addEventListener('change', (event) => {
  const files = [...event.target.files];
  event.target.value = ''; // so that picking the same file again (after a refusal) is a change too
  addFiles(files);
});

const carriesFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes('Files');
let dragDepth = 0;

window.addEventListener('dragenter', (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  dragDepth++;
  $('drop').classList.add('dragging');
});
window.addEventListener('dragover', (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault(); // without it the browser would open the file instead of handing it to the page
  event.dataTransfer.dropEffect = 'copy';
});
window.addEventListener('dragleave', () => {
  if (--dragDepth <= 0) {
    dragDepth = 0;
    $('drop').classList.remove('dragging');
  }
});
window.addEventListener('drop', (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  dragDepth = 0;
  $('drop').classList.remove('dragging');
  const items = [...event.dataTransfer.items].filter((item) => item.kind === 'file');
  const folder = (i) => Boolean(items[i]?.webkitGetAsEntry?.()?.isDirectory);
  const files = [...event.dataTransfer.files].filter((_, i) => !folder(i));
  addFiles(files);
  const folders = event.dataTransfer.files.length - files.length;
  if (folders) say(`${folders} folder(s) left out: drop the files inside them instead.`, true);
});

// --- Start ----------------------------------------------------------------------------------------------

takeTokenFromAddress();
saved.adoptSingle();
const linked = new URLSearchParams(location.search).get('upload');
if (linked && UUID.test(linked)) showFile(linked);
offerResumes();
startLibrary();
