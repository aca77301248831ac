import crypto from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import type { AppContext } from '../../app.ts';
import { dataDirSecretBox } from '../../crypto/secret-box.ts';
import { AppError } from '../../lib/errors.ts';
import * as idempotencyKeys from '../../models/idempotency-keys.ts';

/** JSON with its object keys sorted: the same body written in another key order is the same request. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object')
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(value ?? null);
}

const KEY_SHAPE = /^[!-~]{1,255}$/;

/**
 * How an answer that carries secrets shown once (new redeemable codes) is kept for replays
 * (docs/decisions.md, "Redeemable codes"): sealed with the installation's secret box, replayed for
 * `replayForMs` after it was given; a replay after that is refused with `afterwards` (409, with a
 * `Location` of the object, whose secrets are never told again).
 */
export interface SealedReplay {
  replayForMs: number;
  afterwards: { code: string; messageKey: string; vars: Record<string, unknown>; location: string };
}

/** The action's answer must be kept sealed for Idempotency-Key replays (call before res.json). */
export const sealForReplay = (res: Response, replay: SealedReplay) => {
  res.locals.sealedReplay = replay;
};

/** Stored bodies are JSON; a sealed one is marked by this prefix, which no JSON text starts with. */
const SEALED = 'sealed:';

interface SealedRecord {
  until: number;
  afterwards: SealedReplay['afterwards'];
  answer: string;
}

/**
 * `Idempotency-Key` on every POST (docs/api.md, "Idempotency"). The first request with a key claims
 * it (a unique row per token and key); its answer is stored and replayed for 24 hours to a retry with
 * the same key and body (`Idempotent-Replayed: true`); the same key with another request is 422
 * `idempotency_key_reused`; a retry while the first still runs is 409 `idempotency_in_progress` (with
 * Retry-After). A refusal (4xx) changed nothing (services run in one transaction), so it is not
 * stored and the same key may be sent again; a server error is stored like a success. An answer
 * that tells secrets once is stored sealed and replayed for a while only (sealForReplay).
 */
export function idempotency(ctx: AppContext): RequestHandler {
  const secretBox = dataDirSecretBox(ctx.config.dataDir);
  /** The stored body for a replay, or the refusal of a sealed answer that may no longer be told. */
  const replayOf = (stored: string, sealContext: string): string => {
    if (!stored.startsWith(SEALED)) return stored;
    const record = JSON.parse(stored.slice(SEALED.length)) as SealedRecord;
    const plain = ctx.clock.now().getTime() < record.until ? secretBox.open(record.answer, sealContext) : null;
    if (plain !== null) return plain;
    const { code, messageKey, vars, location } = record.afterwards;
    throw new AppError('conflict', code, 409, messageKey, { vars, headers: { Location: location } });
  };
  const sealed = (body: unknown, replay: SealedReplay, sealContext: string) =>
    SEALED +
    JSON.stringify({
      until: ctx.clock.now().getTime() + replay.replayForMs,
      afterwards: replay.afterwards,
      answer: secretBox.seal(JSON.stringify(body), sealContext),
    } satisfies SealedRecord);

  return async (req, res, next) => {
    const key = req.get('idempotency-key');
    if (req.method !== 'POST' || key === undefined) return next();
    if (!KEY_SHAPE.test(key))
      throw new AppError('validation', 'idempotency_key_invalid', 422, 'api.errors.idempotency_key_invalid');
    const fingerprint = crypto
      .createHash('sha256')
      .update(`${req.method} ${req.originalUrl}\n${canonical(req.body)}`)
      .digest('hex');
    const claim = await idempotencyKeys.claim(ctx.db, req.api!.token.id, key, fingerprint, ctx.clock.now());
    if (claim.state === 'mismatch')
      throw new AppError('validation', 'idempotency_key_reused', 422, 'api.errors.idempotency_key_reused');
    if (claim.state === 'running')
      throw new AppError('conflict', 'idempotency_in_progress', 409, 'api.errors.idempotency_in_progress', {
        headers: { 'Retry-After': '1' },
      });
    // Bound to the token and the very request: a sealed answer opens for nothing else.
    const sealContext = `idempotency:${req.api!.token.id}:${fingerprint}:${key}`;
    if (claim.state === 'done') {
      const body = replayOf(claim.body, sealContext);
      // A sealed answer's secrets are for this client only: no cache keeps them.
      if (claim.body.startsWith(SEALED)) res.set('Cache-Control', 'no-store');
      res.set('Idempotent-Replayed', 'true').status(claim.status).type('application/json').send(body);
      return;
    }

    // A refusal (4xx) changed nothing: services refuse before they commit. A server error may come
    // after a commit (a mail after the order), so it is kept like a success: the key never runs twice.
    const settle = (status: number, body: unknown) =>
      status >= 400 && status < 500
        ? idempotencyKeys.release(ctx.db, claim.id)
        : idempotencyKeys.complete(
            ctx.db,
            claim.id,
            status,
            res.locals.sealedReplay && status < 300
              ? sealed(body, res.locals.sealedReplay as SealedReplay, sealContext)
              : JSON.stringify(body),
          );
    // The answer is stored before it is sent: a retry that follows the answer finds it. Nothing is
    // released when the client goes away (a shop's timeout): the work goes on, its answer is stored,
    // and the retry gets 409 until then. A request that never answers in JSON (its process died)
    // leaves its claim to be given up after ABANDONED_AFTER_MS.
    const send = res.json.bind(res);
    res.json = (body: unknown) => {
      settle(res.statusCode, body).then(
        () => send(body),
        (err: unknown) => {
          ctx.logger.error({ err, requestId: String(req.id) }, 'idempotency record failed');
          send(body);
        },
      );
      return res;
    };
    next();
  };
}
