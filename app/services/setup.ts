import * as accounts from '../models/accounts.ts';
import * as tokens from '../models/tokens.ts';
import { hashPassword } from '../lib/passwords.ts';
import { hashToken, randomToken } from '../lib/tokens.ts';
import { notFound } from '../lib/errors.ts';
import { recordAudit } from './audit.ts';
import type { Actor, ServiceDeps } from './context.ts';
import { inTransaction } from '../lib/transaction.ts';

const SETUP_LINK_HOURS = 24;

/**
 * While no admin exists, every start issues a fresh one-time setup link (older ones stop working).
 * Returns the token to print, or null when the installation is already set up.
 */
export async function issueSetupTokenIfNeeded({ db, clock }: ServiceDeps): Promise<string | null> {
  if ((await accounts.countByRole(db, 'admin')) > 0) return null;
  const token = randomToken();
  const now = clock.now();
  await inTransaction(db, async (trx) => {
    await tokens.invalidateOneTimeCodes(trx, 'setup', now);
    await tokens.insertOneTimeCode(
      trx,
      'setup',
      hashToken(token),
      new Date(now.getTime() + SETUP_LINK_HOURS * 3600_000),
      now,
    );
  });
  return token;
}

export async function isSetupTokenUsable({ db, clock }: ServiceDeps, token: string): Promise<boolean> {
  if ((await accounts.countByRole(db, 'admin')) > 0) return false;
  return !!(await tokens.findUsableOneTimeCode(db, 'setup', hashToken(token), clock.now()));
}

export interface FirstAdmin {
  name: string;
  email: string;
  password: string;
  language: string;
}

/** Creates the first admin and burns the link, in one transaction: the link works exactly once. */
export async function completeSetup(
  { db, clock }: ServiceDeps,
  actor: Actor,
  token: string,
  admin: FirstAdmin,
): Promise<accounts.Account> {
  const passwordHash = await hashPassword(admin.password);
  const now = clock.now();
  const id = await inTransaction(db, async (trx) => {
    const code = await tokens.findUsableOneTimeCode(trx, 'setup', hashToken(token), now);
    if (!code || !(await tokens.consumeOneTimeCode(trx, code.id, now))) throw notFound();
    if ((await accounts.countByRole(trx, 'admin')) > 0) throw notFound();
    const accountId = await accounts.insert(trx, { ...admin, passwordHash, role: 'admin' }, now);
    const created = (await accounts.findById(trx, accountId))!;
    await recordAudit(trx, { ...actor, accountId, label: created.email }, now, {
      action: 'setup.first_admin_created',
      objectType: 'account',
      objectId: accountId,
      after: accounts.auditView(created),
    });
    return accountId;
  });
  return (await accounts.findById(db, id))!;
}
