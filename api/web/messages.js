// What the page says to a person: the meaning of every error code the service answers (the codes of
// uploads/src/error_code.rs; a test checks that each one is here), storage's refusals, and sizes and times.

export function formatBytes(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

export function formatDuration(seconds) {
  if (!Number.isFinite(seconds)) return '…';
  const s = Math.max(0, Math.round(seconds));
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

const PAGE_BUG = 'The page and the service do not understand each other; reload the page (the service may be newer).';

// Each code's sentence; a function when the answer's fields say more.
const MESSAGES = {
  // The request itself: the page sent something the service cannot read, which a reload mends if anything does.
  malformed_json: PAGE_BUG,
  invalid_path: PAGE_BUG,
  invalid_query: PAGE_BUG,
  route_not_found: 'This service does not offer what the page asked for; reload the page.',
  method_not_allowed: PAGE_BUG,
  body_too_large: PAGE_BUG,
  json_required: PAGE_BUG,
  invalid_body: PAGE_BUG,
  invalid_idempotency_key: PAGE_BUG,
  // Who is calling: the token box asks for another token.
  token_missing: 'The service needs a token',
  token_malformed: 'That is not a token this service can read',
  token_expired: 'The token has expired',
  token_not_yet_valid: "The token is not valid yet (is this computer's clock right?)",
  token_invalid_signature: 'The token was not signed by a key this service trusts',
  token_wrong_audience: 'The token is meant for another service',
  token_wrong_issuer: 'The token comes from an issuer this service does not trust',
  token_unknown_key: 'The token was signed with a key this service does not know',
  token_invalid_subject: 'The token names no usable user',
  uppy_endpoint_expired: 'The Uppy endpoint has expired: ask for a new one.',
  uppy_endpoint_invalid: 'The Uppy endpoint is not valid.',
  // Per-owner limits.
  too_many_active_uploads: (b) => `You have ${b.activeUploads ?? 'the most'} uploads in progress, the most allowed ` +
    `(${b.maxActiveUploads ?? '?'}): finish or cancel one to start another.`,
  too_many_active_bytes: (b) => `Your uploads in progress already hold ${formatBytes(b.activeBytes ?? 0)} of the ` +
    `${formatBytes(b.maxActiveBytes ?? 0)} allowed: finish or cancel one to start another.`,
  // Uploads.
  upload_not_found: 'The service no longer knows this upload; start it again.',
  upload_aborted: 'This upload was cancelled and its chunks are gone; start it again.',
  upload_expired: 'This upload stayed unfinished too long and expired; its chunks are gone. Start it again.',
  upload_completed: 'This upload is already complete.',
  upload_completing: 'This upload is being completed; it takes no more chunks.',
  upload_not_uploading: (b) => `This upload is ${b.state ?? 'finished'}; it takes no more chunks.`,
  upload_not_completed: (b) => `This file is not complete yet (${b.state ?? 'in progress'}).`,
  object_corrupt: 'Storage holds other bytes than the file that was uploaded; upload it again.',
  chunk_not_declared: PAGE_BUG,
  checksum_conflict: 'A chunk now has other bytes than when it was announced: the file changed while it was sent. ' +
    'Cancel this upload and send the file again.',
  file_checksum_conflict: 'The file now has another checksum than the one announced for it: it changed while it was sent. ' +
    'Send it again as a new upload.',
  chunks_missing: (b) => `${b.missingChunks ? b.missingChunks.length : 'Some'} range(s) of chunks are still missing.`,
  part_mismatch: 'Storage holds chunks that differ from the file.',
  completion_in_progress: 'The file is being assembled in storage.',
  parts_rejected: 'Storage refused some chunks when assembling the file.',
  part_list_mismatch: PAGE_BUG,
  upload_lost: 'Storage no longer holds this upload; start it again.',
  idempotency_key_reused: PAGE_BUG,
  // Refused values.
  invalid_filename: (b) => (b.character
    ? `The file's name holds ${b.character}, an invisible or control character: rename the file and try again.`
    : 'The file name is empty or longer than 1024 bytes: rename the file and try again.'),
  invalid_content_type: 'The browser gave this file a type the service refuses.',
  invalid_metadata: PAGE_BUG,
  invalid_sha256: PAGE_BUG,
  invalid_etag: 'Storage answered a chunk with an ETag the service does not accept.',
  upload_too_large: (b) => `This file is larger than the ${formatBytes(b.maxUploadSize ?? 0)} the service accepts.`,
  chunk_size_too_small: PAGE_BUG,
  chunk_size_too_large: PAGE_BUG,
  too_many_chunks: PAGE_BUG,
  chunk_index_out_of_range: PAGE_BUG,
  invalid_part_number: PAGE_BUG,
  empty_batch: PAGE_BUG,
  batch_too_large: PAGE_BUG,
  invalid_expires_in: (b) => `The service gives links of at most ${formatDuration(b.maxExpiresIn ?? 0)}.`,
  invalid_limit: PAGE_BUG,
  invalid_cursor: 'The list changed format; reload the page.',
  invalid_state_filter: PAGE_BUG,
  // Downloads.
  precondition_failed: 'The file changed since this page last read it; reload the page.',
  range_not_satisfiable: 'The player asked for bytes past the end of the file.',
  too_many_downloads: 'The service is sending as many files as it can.',
  link_expired: 'This link has expired: reload the list for a fresh one.',
  link_invalid: 'This link is not valid (changed or cut short).',
  // Faults of the service or what it depends on: retried.
  internal_error: 'The service failed (its log says why).',
  request_timeout: 'The service took too long to answer.',
  storage_error: 'Storage refused a request of the service.',
  storage_unavailable: 'The service cannot reach storage.',
  storage_timeout: 'Storage did not answer the service in time.',
  database_unavailable: 'The service cannot reach its database.',
  auth_unavailable: 'The service cannot check tokens right now.',
  not_ready: 'The service is not ready yet.',
};

// What storage's own refusals of a chunk's PUT mean (S3's error codes, from its XML answer).
const STORAGE_MESSAGES = {
  BadDigest: 'The file changed while it was being sent (a chunk no longer matches its checksum). ' +
    'Cancel this upload and send the file again.',
  AccessDenied: "Storage refused the chunk's signature.",
  SignatureDoesNotMatch: "Storage refused the chunk's signature.",
  EntityTooLarge: 'Storage refused a chunk as too large.',
  RequestTimeout: 'Storage gave up waiting for a chunk.',
  SlowDown: 'Storage asks to slow down.',
  NoETag: "Storage's answer has no readable ETag: the bucket's CORS rule must expose the ETag header.",
};

// One sentence for any failure the page meets: the service's answers by code, storage's by its code, the
// network's, and anything else by its own message.
export function describe(err) {
  if (!err) return '';
  if (err.storage) {
    if (err.status === 0) {
      return 'Storage cannot be reached from this browser (the network, or a CORS rule of the bucket ' +
        'that does not allow this page).';
    }
    return STORAGE_MESSAGES[err.code] || `Storage refused a chunk (${err.status}${err.code ? ` ${err.code}` : ''}).`;
  }
  if (err.status === 0) return 'The service cannot be reached (network).';
  const message = MESSAGES[err.code];
  if (typeof message === 'function') return message(err.body || {});
  return message || err.message || String(err);
}
