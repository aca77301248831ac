import multer from 'multer';
import type { RequestHandler } from 'express';

/**
 * Parses one uploaded file into memory (never onto disk) with strict limits. Multipart forms send
 * their CSRF token in the action URL (`?_csrf=`), because the token check runs before the body of a
 * multipart request is read; see app.ts. Over the size limit the request fails with 413.
 */
export function singleUpload(field: string, maxBytes: number): RequestHandler {
  return multer({ storage: multer.memoryStorage(), limits: { fileSize: maxBytes, files: 1, fields: 30, parts: 32, fieldSize: 64 * 1024 } }).single(field);
}
