import { USAGE_GENESIS, usageChainFault } from '../../sdk/src/usage.ts';
import type { UsageReportPayload } from '../../sdk/src/payloads.ts';
import type * as licenses from '../models/licenses.ts';
import * as devices from '../models/devices.ts';
import * as consumption from '../models/consumption.ts';
import * as usageReports from '../models/usage-reports.ts';
import * as requestNonces from '../models/request-nonces.ts';
import { againAfterUniqueViolation } from '../models/normalise.ts';
import { inTransaction } from '../lib/transaction.ts';
import { boundActivation, type ActivationDeps } from './activation.ts';
import { entitlementsDigest, issueLicenseFile } from './license-files.ts';
import { ActivationError, recordRefusal } from './refusals.ts';
import { readSignedRequest } from './requests.ts';
import { recordAudit } from './audit.ts';
import type { Actor } from './context.ts';

/**
 * The signed usage report (docs/file-formats.md, "Usage report"): an offline device's usage log
 * entries since its last accepted report, signed with its key. Accepted only from the device on
 * record (its key, hardware id and activation nonce), with an unbroken chain that continues exactly
 * where the last accepted report ended (counter and hash); recorded once (unique per device and first
 * counter), and answered in the same step with a refresh file when the license changed since the
 * device's last file. Every refusal is recorded like any other (audit event, license history).
 */

export interface ReportOutcome {
  kind: 'usage-report';
  reportId: number;
  deviceId: number;
  licenseId: number;
  productName: string;
  licenseKey: string | null;
  firstCounter: number;
  lastCounter: number;
  entries: number;
  /** The renewed license (a refresh file) when the license changed since the device's last file. */
  renewal: { text: string; counter: number; filename: string } | null;
}

/** Thrown with the counter the portal expects next, which the upload page tells the user. */
export class ReportError extends ActivationError {
  constructor(
    code: ConstructorParameters<typeof ActivationError>[0],
    status: number,
    readonly expected: number | null = null,
  ) {
    super(code, status);
  }
}

function summary(p: UsageReportPayload) {
  const consumed: Record<string, number> = {};
  const used: Record<string, number> = {};
  let peak: number | null = null;
  for (const e of p.entries) {
    if (e.kind === 'seats') peak = Math.max(peak ?? 0, e.amount);
    else if (e.kind === 'consumption') consumed[e.feature!] = (consumed[e.feature!] ?? 0) + e.amount;
    else used[e.feature!] = (used[e.feature!] ?? 0) + e.amount;
  }
  return { consumed, used, peak };
}

export async function processUsageReport(deps: ActivationDeps, actor: Actor, text: string): Promise<ReportOutcome> {
  const { payload: p, requestHash } = (await readSignedRequest(deps, actor, 'offline', text, ['usage-report'])) as {
    payload: UsageReportPayload;
    requestHash: string;
  };
  let licenseKnown = false;
  const run = () =>
    inTransaction(deps.db, async (trx): Promise<ReportOutcome> => {
      const at = deps.clock.now();
      const bound = await boundActivation(trx, p, at);
      if (!bound || (await requestNonces.activationNonceOf(trx, bound.device.id)) !== p.activationNonce)
        throw new ReportError('report_device_unknown', 404);
      const { license, device } = bound;
      licenseKnown = true;
      if (usageChainFault(p.entries)) throw new ReportError('report_chain_broken', 422);
      if (await usageReports.seen(trx, p.nonce, requestHash)) throw new ReportError('report_replayed', 409);
      const last = await usageReports.lastOf(trx, device.id);
      const expected = (last?.lastCounter ?? 0) + 1;
      const first = p.entries[0]!;
      const final = p.entries.at(-1)!;
      if (first.counter < expected) throw new ReportError('report_rolled_back', 409, expected);
      if (first.counter > expected) throw new ReportError('report_out_of_order', 409, expected);
      if (first.prev !== (last?.headHash ?? USAGE_GENESIS))
        throw new ReportError('report_chain_mismatch', 409, expected);

      const { consumed, used, peak } = summary(p);
      const reportId = await usageReports.insert(
        trx,
        {
          licenseId: license.id,
          deviceId: device.id,
          nonce: p.nonce,
          reportHash: requestHash,
          firstCounter: first.counter,
          lastCounter: final.counter,
          headHash: final.hash,
          entries: p.entries.length,
          peakSeats: peak,
          consumption: consumed,
          featuresUsed: used,
        },
        at,
      );
      // Consumption counts against the license in the period each entry names (never later than now):
      // a true-up records what was used offline, past the maximum or not (marked as overage).
      const rules = new Map((await consumption.rulesOf(trx, license.id)).map((r) => [r.code, r]));
      const sums = new Map<string, { rule: consumption.ConsumptionRule; period: string; amount: number }>();
      for (const e of p.entries) {
        const rule = e.kind === 'consumption' ? rules.get(e.feature!) : undefined;
        if (!rule || e.amount === 0) continue;
        const when = new Date(Math.min(Date.parse(e.at), at.getTime()));
        const period = consumption.periodOf(rule.period, when);
        const key = `${rule.featureId}:${period}`;
        const sum = sums.get(key) ?? { rule, period, amount: 0 };
        sum.amount += e.amount;
        sums.set(key, sum);
      }
      for (const { rule, period, amount } of sums.values()) {
        const usedAfter = (await consumption.usedIn(trx, license.id, rule.featureId, period)) + amount;
        await consumption.insertRecord(
          trx,
          {
            nonce: null,
            reportId,
            licenseId: license.id,
            featureId: rule.featureId,
            deviceId: device.id,
            period,
            amount,
            usedAfter,
            overage: rule.max !== null && usedAfter > rule.max,
          },
          at,
        );
        await consumption.add(trx, license.id, rule.featureId, period, amount);
      }

      // The renewal pick-up: the license changed since the device's last file, or the device has
      // not installed the newest file it was given.
      let renewal: ReportOutcome['renewal'] = null;
      const digests = await devices.entitlementDigests(trx, license.id);
      if (
        device.active &&
        (digests.get(device.id) !== (await entitlementsDigest(trx, license)) ||
          p.licenseCounter < device.licenseCounter)
      ) {
        try {
          const file = await issueLicenseFile(trx, deps, license, device, { typ: 'refresh', at });
          const counter = file.payload.counter;
          await usageReports.setRenewed(trx, reportId, counter);
          await devices.addHistory(
            trx,
            {
              licenseId: license.id,
              deviceId: device.id,
              event: 'refreshed',
              channel: device.channel,
              hardwareId: device.hardwareId,
              detail: `counter ${counter}`,
            },
            at,
          );
          renewal = {
            text: file.text,
            counter,
            filename: `${license.productCode}-${device.hardwareId.replace(/[^\w.-]/g, '_').slice(0, 40)}-refresh-${counter}.lic`,
          };
        } catch (err) {
          // A license that may not be used now (disabled, expired…): the report counts, no file comes back.
          if (!(err instanceof ActivationError)) throw err;
        }
      }
      await devices.addHistory(
        trx,
        {
          licenseId: license.id,
          deviceId: device.id,
          event: 'usage_reported',
          channel: device.channel,
          hardwareId: device.hardwareId,
          detail: `entries ${first.counter}–${final.counter}`,
        },
        at,
      );
      await recordAudit(trx, actor, at, {
        action: 'usage_report.accepted',
        objectType: 'device',
        objectId: device.id,
        orderId: license.orderId,
        after: {
          licenseId: license.id,
          firstCounter: first.counter,
          lastCounter: final.counter,
          peakSeats: peak,
          consumption: consumed,
          renewedCounter: renewal?.counter ?? null,
          requestHash,
        },
      });
      return {
        kind: 'usage-report',
        reportId,
        deviceId: device.id,
        licenseId: license.id,
        productName: license.productName,
        licenseKey: license.licenseKey,
        firstCounter: first.counter,
        lastCounter: final.counter,
        entries: p.entries.length,
        renewal,
      };
    });
  try {
    // The same report (or range) through two connections at one instant: the second insert breaks a
    // unique key; run again, it finds the first and is refused as a replay.
    return await againAfterUniqueViolation(run);
  } catch (err) {
    if (err instanceof ActivationError)
      await recordRefusal(
        deps,
        actor,
        {
          action: 'usage_report.refused',
          channel: 'offline',
          requestHash,
          hardwareId: p.hardwareId,
          licenseId: licenseKnown ? p.licenseId : null,
        },
        err.code,
      );
    throw err;
  }
}

/**
 * What the license pages show of consumption and reports: each consumption feature's use in its
 * current period, and the devices with a renewal pending (the license changed since their last file:
 * an offline device picks the renewal up with its next usage report).
 */
export async function licenseUsageView(
  db: ActivationDeps['db'],
  license: licenses.License,
  deviceList: devices.Device[],
  at: Date,
) {
  const [rows, digests, current] = await Promise.all([
    consumption.usageOf(db, license.id, at),
    devices.entitlementDigests(db, license.id),
    entitlementsDigest(db, license),
  ]);
  const pending = new Set(
    deviceList
      .filter((d) => d.active && d.channel === 'offline' && digests.get(d.id) && digests.get(d.id) !== current)
      .map((d) => d.id),
  );
  return { consumption: rows, pending };
}
