export const PAGE_SIZE = 50;

/** Reads ?page= safely: anything that is not a sane positive whole number means page 1. */
export function pageFrom(query: unknown, pageSize = PAGE_SIZE) {
  const raw = (query as { page?: unknown } | undefined)?.page;
  const n = typeof raw === 'string' && /^\d{1,6}$/.test(raw) ? Number(raw) : 1;
  const page = Math.max(1, n);
  return { page, limit: pageSize, offset: (page - 1) * pageSize };
}

export function pageCount(total: number, pageSize = PAGE_SIZE): number {
  return Math.max(1, Math.ceil(total / pageSize));
}
