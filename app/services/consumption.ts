import * as consumption from '../models/consumption.ts';
import { againAfterUniqueViolation } from '../models/normalise.ts';
import { inTransaction } from '../lib/transaction.ts';
import { boundActivation, type ActivationDeps } from './activation.ts';
import { ActivationError, assertUsable, recordRefusal } from './refusals.ts';
import { readApiRequest } from './online.ts';
import type { Actor } from './context.ts';

/**
 * Consumption features (docs/decisions.md, "Consumption and the usage report"): the License API's
 * `consume` records `amount` units of a feature against the license, in the feature's period (the
 * license's whole life, or a calendar month in UTC), refused past the maximum unless the license
 * allows overage (up to its cap, if any). A nonce counts once: the record's unique key holds across
 * processes, and a repeat (also one sent at the same instant) gets the first answer back.
 */

export interface ConsumptionAnswer {
  feature: string;
  amount: number;
  used: number;
  max: number | null;
  period: string;
  periodEndsAt: string | null;
  overage: boolean;
  repeated: boolean;
}

/** Whether `used` units are within a rule (its maximum, plus the overage it allows). */
export function withinRule(rule: consumption.ConsumptionRule, used: number): boolean {
  if (rule.max === null || used <= rule.max) return true;
  if (!rule.allowOverage) return false;
  return rule.maxOverage === null || used <= rule.max + rule.maxOverage;
}

export async function consumeOnline(deps: ActivationDeps, actor: Actor, requestText: unknown) {
  const { payload: p, requestHash } = await readApiRequest(deps, actor, requestText, 'consumption-request');
  const answer = (rule: consumption.ConsumptionRule, r: consumption.ConsumptionRecord, repeated: boolean) =>
    ({
      feature: rule.code,
      amount: r.amount,
      used: r.usedAfter,
      max: rule.max,
      period: r.period,
      periodEndsAt: consumption.periodEnd(r.period)?.toISOString() ?? null,
      overage: r.overage,
      repeated,
    }) satisfies ConsumptionAnswer;
  let licenseKnown = false;
  try {
    const run = () =>
      inTransaction(deps.db, async (trx) => {
        const at = deps.clock.now();
        const bound = await boundActivation(trx, p, at);
        if (!bound) throw new ActivationError('activation_unknown', 404);
        const { license, device } = bound;
        licenseKnown = true;
        const rule = (await consumption.rulesOf(trx, license.id)).find((r) => r.code === p.feature);
        if (!rule) throw new ActivationError('feature_unknown', 404);
        // A nonce already counted: its first answer, whatever has changed since.
        const earlier = await consumption.findRecord(trx, p.nonce);
        if (earlier) {
          if (
            earlier.licenseId !== license.id ||
            earlier.deviceId !== device.id ||
            earlier.featureId !== rule.featureId
          )
            throw new ActivationError('nonce_reused', 409);
          return answer(rule, earlier, true);
        }
        if (!device.active) throw new ActivationError('activation_inactive', 410);
        await assertUsable(trx, license, device.channel, device.hardwareId, at);
        const period = consumption.periodOf(rule.period, at);
        const used = (await consumption.usedIn(trx, license.id, rule.featureId, period)) + p.amount;
        if (!withinRule(rule, used)) throw new ActivationError('consumption_exceeded', 409);
        const record = {
          nonce: p.nonce,
          licenseId: license.id,
          featureId: rule.featureId,
          deviceId: device.id,
          period,
          amount: p.amount,
          usedAfter: used,
          overage: rule.max !== null && used > rule.max,
        };
        await consumption.insertRecord(trx, record, at);
        await consumption.add(trx, license.id, rule.featureId, period, p.amount);
        return answer(rule, record, false);
      });
    // Two requests with one nonce through two connections before either committed: the second's
    // insert breaks the unique key; run again, it finds the first's record and answers with it.
    return await againAfterUniqueViolation(run);
  } catch (err) {
    if (err instanceof ActivationError)
      await recordRefusal(
        deps,
        actor,
        {
          action: 'consumption.refused',
          channel: 'online',
          requestHash,
          hardwareId: p.hardwareId,
          licenseId: licenseKnown ? p.licenseId : null,
        },
        err.code,
      );
    throw err;
  }
}
