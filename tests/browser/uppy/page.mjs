// The page the Uppy test drives: the real @uppy/core + @uppy/aws-s3 as a user configures them, the
// companionEndpoint and mode from the query string, what Uppy reports kept on `window.harness`.
// ?endpoint=URL             the companionEndpoint, exactly as the app would hand it to Uppy
// &multipart=1              shouldUseMultipart: true, plus Golden Retriever (Uppy's resume across reloads)
// &chunk=BYTES              getChunkSize (default: Uppy's own, max(5 MiB, size / 10000))
// &debug=1                  Uppy's own debug log on the console
// &pauseAfter=N             pause the file as soon as part N is in S3 (before part N+1 is even signed), so a reload
//                           finds exactly N parts there; after the reload part numbers are above N, so it never fires
import AwsS3 from '@uppy/aws-s3';
import Uppy from '@uppy/core';
import GoldenRetriever from '@uppy/golden-retriever';

const query = new URLSearchParams(location.search);
const multipart = query.get('multipart') === '1';
const chunk = Number(query.get('chunk')) || undefined;
const pauseAfter = Number(query.get('pauseAfter')) || undefined;

const harness = { parts: [], successes: [], errors: [], restored: null };
window.harness = harness;

// One store name per mode, so the multipart page never restores the POST page's files.
const uppy = new Uppy({ id: multipart ? 'multipart' : 'post', debug: query.get('debug') === '1' });
window.uppy = uppy;
uppy.use(AwsS3, {
  companionEndpoint: query.get('endpoint'),
  ...(multipart ? { shouldUseMultipart: true } : {}),
  ...(chunk ? { getChunkSize: () => chunk } : {}),
});

uppy.on('s3-multipart:part-uploaded', (file, part) => {
  harness.parts.push(part.PartNumber);
  if (part.PartNumber === pauseAfter) uppy.pauseResume(file.id);
});
uppy.on('upload-success', (file, response) => {
  harness.successes.push({ name: file.name, key: response.body.key, location: response.body.location,
    uploadURL: response.uploadURL });
});
uppy.on('upload-error', (file, error) => {
  harness.errors.push({ name: file?.name, message: String(error?.message || error) });
});

if (multipart) {
  // Registered before the plugin: its restore runs as soon as IndexedDB answers.
  uppy.on('restored', () => {
    harness.restored = Object.values(uppy.getState().files).map((file) => ({
      name: file.name, isGhost: Boolean(file.isGhost), s3Multipart: file.s3Multipart ?? null }));
  });
  uppy.use(GoldenRetriever);
}

// A file picked again after a reload replaces the restored "ghost" (Golden Retriever keeps no blob over
// 10 MiB by default): Uppy keeps its state, s3Multipart included, so nothing is uploaded until the resume.
document.querySelector('#file').addEventListener('change', (event) => {
  const picked = [...event.target.files];
  const restoring = harness.restored !== null;
  for (const file of picked) uppy.addFile({ name: file.name, type: file.type, data: file, source: 'Local' });
  event.target.value = '';
  if (!restoring) uppy.upload().catch((err) => harness.errors.push({ message: String(err) }));
});

// What Dashboard's "resume" button does after a restore.
harness.confirmRestore = () => uppy.emit('restore-confirmed');

// The uploadId Golden Retriever has persisted for the next page load, if any (it saves throttled).
harness.persistedUploadId = () => new Promise((resolve, reject) => {
  const open = indexedDB.open('uppy-blobs');
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const db = open.result;
    const get = db.transaction(['metadata']).objectStore('metadata').get(uppy.getID());
    get.onerror = () => reject(get.error);
    get.onsuccess = () => {
      db.close();
      const files = get.result ? Object.values(JSON.parse(get.result.metadata).files || {}) : [];
      resolve(files.map((file) => file.s3Multipart?.uploadId).find(Boolean) ?? null);
    };
  };
});

harness.ready = true;
