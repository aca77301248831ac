import type { Account } from '../models/accounts.ts';
import type { Settings } from '../models/settings.ts';

/** A manager without a second factor, where the vendor requires one for managers, must enrol before anything else. */
export function mustEnrolSecondFactor(account: Account, settings: Pick<Settings, 'managerSecondFactor'>): boolean {
  return account.role === 'manager' && !account.totpEnabledAt && settings.managerSecondFactor;
}
