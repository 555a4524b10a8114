// Uppy Companion's standalone server, started as its bin/companion starts it, but bound to 127.0.0.1 only
// (bin/companion listens on every interface). Configured by the COMPANION_* environment, as the bin is.
import * as companion from '@uppy/companion'
import standalone from '@uppy/companion/standalone'

const port = Number(process.env.COMPANION_PORT || 3020)
const { app } = standalone()
companion.socket(app.listen(port, '127.0.0.1'))
