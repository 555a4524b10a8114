// Runs the real Uppy Companion standalone app, configured by its usual COMPANION_* variables, on 127.0.0.1 only.
// Companion's own bin (`companion`) calls `app.listen(port)` without a host, so it listens on every interface;
// this is that bin with the host added. Usage: COMPANION_PORT=3020 COMPANION_... node start.mjs
import { socket } from '@uppy/companion';
import standalone from '@uppy/companion/standalone';

const host = process.env.COMPANION_HOST || '127.0.0.1';
const port = Number(process.env.COMPANION_PORT || 3020);
const { app } = standalone();
const server = app.listen(port, host, () => {
  console.log(`companion listening on http://${host}:${server.address().port}`);
});
socket(server);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));
