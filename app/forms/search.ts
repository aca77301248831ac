import { z } from 'zod';
import { requiredText } from './fields.ts';

/** The search box of the User Portal and the console: one text, trimmed, 1–200 characters. */
export const searchForm = z.object({ q: requiredText(200) });
