/**
 * The no-database baseline of the offline activation: the same HTTP and crypto work as Portico's
 * POST /offline/requests with everything else taken away. Express with the same multipart parser
 * (multer, memory storage, same limits), the SDK's verifyDeviceSigned and payload reader, the
 * request hash, and a license envelope signed with signEnvelope, sent back in a small HTML page.
 * No session, no CSRF, no rate limit, no database. Run as its own process by run.ts.
 */
import crypto from 'node:crypto';
import express from 'express';
import { singleUpload } from '../../app/middleware/uploads.ts';
import { MAX_ZIP_BYTES } from '../../app/services/offline.ts';
import { signEnvelope, verifyDeviceSigned } from '../../sdk/src/envelope.ts';
import { readActivationRequestPayload } from '../../sdk/src/payloads.ts';

const { privateKey } = crypto.generateKeyPairSync('ed25519');
const kid = 'ed25519-baseline';
let activationId = 0;
const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const app = express();
app.disable('x-powered-by');
app.post('/offline/requests', singleUpload('file', MAX_ZIP_BYTES), (req, res) => {
  const text = req.file?.buffer.toString('utf8') ?? '';
  let payload;
  try {
    payload = readActivationRequestPayload(verifyDeviceSigned(text, ['activation-request']).payload);
  } catch {
    res.status(400).send('bad request');
    return;
  }
  const requestHash = crypto.createHash('sha256').update(text.trim()).digest('hex');
  const now = new Date();
  const license = signEnvelope(
    'license',
    kid,
    {
      v: 1,
      product: payload.product,
      licenseId: 1,
      licenseKey: payload.licenseKey,
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
  res
    .set('Cache-Control', 'no-store')
    .type('html')
    .send(`<!doctype html><html lang="en"><head><title>License activated</title></head><body><main><h1>License activated</h1><dl><dt>Product</dt><dd>${escapeHtml(payload.product)}</dd><dt>Hardware id</dt><dd>${escapeHtml(payload.hardwareId)}</dd></dl><pre>${escapeHtml(license)}</pre></main></body></html>`);
});

const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`baseline listening on ${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
