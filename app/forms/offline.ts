import { z } from 'zod';
import { MAX_REQUEST_BYTES } from '../services/offline.ts';

/** What the offline upload form carries besides the file: a pasted request, and a license user's credentials (both optional). */
const text = (max: number) =>
  z.preprocess((v) => (typeof v === 'string' ? v : ''), z.string().max(max, 'validation.tooLong'));

export const offlineUploadForm = z
  .object({ request: text(MAX_REQUEST_BYTES), email: text(254), password: text(200) })
  .transform((f) => ({
    pasted: f.request,
    email: f.email,
    credentials: f.email.trim() && f.password ? { email: f.email, password: f.password } : null,
  }));
