/**
 * The no-database baseline of the offline activation: the same HTTP and crypto work as Portico's
 * POST /offline/requests and the license download after it, with everything else taken away (and
 * in one request: the signed license comes back in the page). Express with the same multipart parser
 * (multer, memory storage, same limits), the SDK's verifyDeviceSigned and payload reader, the
 * request hash, and a license envelope signed with signEnvelope, sent back in a small HTML page;
 * and the same for the License API's activate and check (JSON), and /healthz with Portico's handler.
 * No session, no CSRF, no rate limit, no database. Run as its own process by run.ts.
 */
import crypto from 'node:crypto';
import express from 'express';
import { singleUpload } from '../../app/middleware/uploads.ts';
import { MAX_ZIP_BYTES } from '../../app/services/offline.ts';
import { signEnvelope, verifyDeviceSigned } from '../../sdk/src/envelope.ts';
import { readActivationRequestPayload, readCheckRequestPayload } from '../../sdk/src/payloads.ts';

const { privateKey } = crypto.generateKeyPairSync('ed25519');
const kid = 'ed25519-baseline';
let activationId = 0;
const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Verifies a device-signed request and signs the license (or refresh) envelope that answers it; null when the request does not verify. */
function answer(
  text: string,
  request: 'activation-request' | 'check-request',
): { license: string; product: string; hardwareId: string } | null {
  let payload: ReturnType<typeof readActivationRequestPayload> | ReturnType<typeof readCheckRequestPayload>;
  try {
    const verified = verifyDeviceSigned(text, [request]).payload;
    payload =
      request === 'activation-request' ? readActivationRequestPayload(verified) : readCheckRequestPayload(verified);
  } catch {
    return null;
  }
  const requestHash = crypto.createHash('sha256').update(text.trim()).digest('hex');
  const now = new Date();
  const license = signEnvelope(
    request === 'activation-request' ? 'license' : 'refresh',
    kid,
    {
      v: 1,
      product: payload.product,
      licenseId: 1,
      licenseKey: null,
      user: null,
      activationId: ++activationId,
      hardwareId: payload.hardwareId,
      devicePublicKey: payload.devicePublicKey,
      requestNonce: payload.nonce,
      requestHash,
      issuedAt: now.toISOString(),
      counter: 0,
      licenseType: 'perpetual',
      trial: false,
      startsAt: now.toISOString(),
      expiresAt: null,
      leaseEndsAt: new Date(now.getTime() + 30 * 86_400_000).toISOString(),
      maintenanceUntil: null,
      maxActivations: 10,
      floating: null,
      features: [],
    },
    privateKey,
  );
  return { license, product: payload.product, hardwareId: payload.hardwareId };
}

const app = express();
app.disable('x-powered-by');
// A bare Express app with Portico's /healthz handler: the baseline of the thin path.
app.get('/healthz', (_req, res) => {
  res.set('Cache-Control', 'no-store').json({ status: 'ok' });
});
app.post('/offline/requests', singleUpload('file', MAX_ZIP_BYTES), (req, res) => {
  const a = answer(req.file?.buffer.toString('utf8') ?? '', 'activation-request');
  if (!a) {
    res.status(400).send('bad request');
    return;
  }
  res
    .set('Cache-Control', 'no-store')
    .type('html')
    .send(
      `<!doctype html><html lang="en"><head><title>License activated</title></head><body><main><h1>License activated</h1><dl><dt>Product</dt><dd>${escapeHtml(a.product)}</dd><dt>Hardware id</dt><dd>${escapeHtml(a.hardwareId)}</dd></dl><pre>${escapeHtml(a.license)}</pre></main></body></html>`,
    );
});

// The License API's shape (docs/api.md): JSON in, JSON out, the same verify + sign.
app.post('/api/v1/:action', express.json({ limit: '100kb' }), (req, res) => {
  const a = answer(
    String(req.body?.request ?? ''),
    req.params.action === 'check' ? 'check-request' : 'activation-request',
  );
  if (!a) {
    res.status(400).json({ error: { code: 'request_malformed', message: 'bad request' } });
    return;
  }
  res
    .set('Cache-Control', 'no-store')
    .json(
      req.params.action === 'check'
        ? { valid: true, license: a.license }
        : { activationId, repeated: false, license: a.license },
    );
});

const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`baseline listening on ${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
