import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import multer from 'multer';
import type { RequestHandler, Response } from 'express';
import { HttpError } from '../lib/errors.ts';
import { clientOf } from '../lib/rate-limiter.ts';

/** A file field streamed to this process's upload directory; the file is deleted when the response ends. */
export interface StoredUpload {
  path: string;
  size: number;
}

declare global {
  namespace Express {
    interface Request {
      /** Set by streamToDisk when the form carried a (non-empty) file in its file field. */
      upload?: StoredUpload;
    }
  }
}

/** What a client is told to wait when every upload slot is taken: a moment, not a lock-out. */
export const BUSY_RETRY_SECONDS = 5;
/** How long the body of a streamed upload may take to arrive, so that a slow client cannot keep a slot. */
export const UPLOAD_BODY_SECONDS = 60;

/**
 * Parses one uploaded file into memory (never onto disk) with strict limits, for small uploads of
 * signed-in users (a logo, a CSV). Multipart forms send their CSRF token in the action URL (`?_csrf=`),
 * because the token check runs before the body of a multipart request is read; see app.ts. Over
 * the size limit the request fails with 413.
 */
export function singleUpload(field: string, maxBytes: number): RequestHandler {
  return multer({
    storage: multer.memoryStorage(),
    limits: { fileSize: maxBytes, files: 1, fields: 30, parts: 32, fieldSize: 64 * 1024 },
  }).single(field);
}

/**
 * An answer sent before the request's body was read closes the connection: Node then drops the rest
 * of the body with the socket instead of reading all of it to keep the connection alive.
 */
export function refusedUnread<E>(res: Response, err: E): E {
  res.set('Connection', 'close');
  return err;
}

/**
 * At most `slots` requests at once through `acquire` (per app, so per process), and at most
 * `perClient` of them from one client address (an IPv6 client by its /64): one client that trickles
 * its bodies cannot hold every slot. The others are answered 503 with Retry-After at once, before a
 * byte of their body is read. A slot is given back when the response has been sent or the
 * connection closes, whichever comes first — a client that goes away mid-body included.
 */
export function uploadSlots(slots: number, perClient = Math.max(1, Math.ceil(slots / 4))) {
  let inUse = 0;
  const byClient = new Map<string, number>();
  const acquire: RequestHandler = (req, res, next) => {
    const client = clientOf(req.ip);
    const mine = byClient.get(client) ?? 0;
    if (inUse >= slots || mine >= perClient)
      return next(
        refusedUnread(res, new HttpError(503, 'uploads.busy', { 'Retry-After': String(BUSY_RETRY_SECONDS) })),
      );
    inUse += 1;
    byClient.set(client, mine + 1);
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      inUse -= 1;
      const left = (byClient.get(client) ?? 1) - 1;
      if (left > 0) byClient.set(client, left);
      else byClient.delete(client);
    };
    res.once('finish', release).once('close', release);
    next();
  };
  return { acquire, inUse: () => inUse };
}

let tempDir: string | undefined;

/**
 * This process's directory for upload bodies, under the system's temporary directory (`TMPDIR`):
 * made by mkdtemp (mode 0700) on first use — and again if a cleaner of /tmp removed it while the
 * process was idle — and removed when the process exits.
 */
export function uploadTempDir(): string {
  if (!tempDir) process.once('exit', () => fs.rmSync(tempDir!, { recursive: true, force: true }));
  if (!tempDir || !fs.existsSync(tempDir)) tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-uploads-'));
  return tempDir;
}

export interface StreamToDiskOptions {
  /** The form's file field; its body goes to a temporary file (req.upload), never into memory. */
  field: string;
  maxFileBytes: number;
  /** Each other field (req.body), such as a pasted request. */
  maxFieldBytes: number;
  bodySeconds?: number;
  /** Called (and awaited) before a body over the limits is refused with 413, e.g. to audit it; the body is never read. */
  onTooLarge?: (req: import('express').Request) => Promise<void>;
}

/**
 * Streams a multipart form's one file to a temporary file and its other fields into req.body, with
 * every limit checked as the bytes arrive: a declared length over the form's largest possible size
 * is refused before a byte is read (413; a body without a length, 411 — browsers always send one),
 * a file or field one byte over its limit stops the reading there (413), and a body still arriving
 * after `bodySeconds` is dropped (408). Every refusal closes the connection. The temporary file is
 * deleted when the response ends, whatever happened. Other content types pass (their body parsers
 * in app.ts have limits of their own).
 */
export function streamToDisk(o: StreamToDiskOptions): RequestHandler {
  // Room for the file, the form's few other fields (a pasted request, e-mail, password) and the framing.
  const maxBodyBytes = o.maxFileBytes + 4 * o.maxFieldBytes;
  const limits = { files: 1, fileSize: o.maxFileBytes + 1, fields: 30, parts: 32, fieldSize: o.maxFieldBytes + 1 };
  return (req, res, next) => {
    if (!req.is('multipart/form-data')) return next();
    if (!req.get('content-length')) return next(refusedUnread(res, new HttpError(411, 'errors.badRequest')));
    if (!(Number(req.get('content-length')) <= maxBodyBytes)) {
      const refused = () => next(refusedUnread(res, new HttpError(413, 'errors.tooLarge')));
      if (o.onTooLarge) return void o.onTooLarge(req).then(refused, next);
      return refused();
    }
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: req.headers, limits });
    } catch {
      return next(refusedUnread(res, new HttpError(400, 'errors.badRequest')));
    }

    const fields: Record<string, string> = Object.create(null);
    let upload: StoredUpload | undefined;
    let out: fs.WriteStream | undefined;
    let written: Promise<unknown> = Promise.resolve();
    let settled = false;
    /** Ends this middleware's part exactly once: no more reading, no more deadline. */
    const settle = () => {
      if (settled) return false;
      settled = true;
      clearTimeout(deadline);
      req.unpipe(parser);
      return true;
    };
    const fail = (err: unknown) => {
      if (settle()) next(err);
    };
    const refuse = (status: number, messageKey: string) => {
      if (!settle()) return;
      req.pause();
      const refused = () => next(refusedUnread(res, new HttpError(status, messageKey)));
      if (status === 413 && o.onTooLarge) void o.onTooLarge(req).then(refused, next);
      else refused();
    };
    const deadline = setTimeout(() => refuse(408, 'uploads.tooSlow'), (o.bodySeconds ?? UPLOAD_BODY_SECONDS) * 1000);

    // Sent, failed or abandoned by the client: the temporary file goes.
    res.once('close', () => {
      settle();
      out?.destroy();
      if (upload) fs.rm(upload.path, { force: true }, () => {});
    });

    parser.on('field', (name, value, info) => {
      if (info.valueTruncated || info.nameTruncated) return refuse(413, 'errors.tooLarge');
      fields[name] = value;
    });
    parser.on('file', (name, stream, info) => {
      stream.on('limit', () => refuse(413, 'errors.tooLarge'));
      if (name !== o.field || upload) return refuse(400, 'errors.badRequest');
      // An empty file input still sends its (empty) part.
      if (!info.filename) return stream.resume();
      const file: StoredUpload = { path: path.join(uploadTempDir(), crypto.randomUUID()), size: 0 };
      const stored = fs.createWriteStream(file.path, { flags: 'wx', mode: 0o600 });
      upload = file;
      out = stored;
      written = pipeline(stream, stored).then(() => (file.size = stored.bytesWritten), fail);
    });
    parser.on('partsLimit', () => refuse(400, 'errors.badRequest'));
    parser.on('filesLimit', () => refuse(400, 'errors.badRequest'));
    parser.on('fieldsLimit', () => refuse(400, 'errors.badRequest'));
    parser.on('error', () => refuse(400, 'errors.badRequest'));
    parser.on('close', () =>
      written.then(() => {
        if (!settle()) return;
        req.body = fields;
        req.upload = upload;
        next();
      }),
    );
    req.pipe(parser);
  };
}
