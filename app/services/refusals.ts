import type { Knex } from 'knex';
import { AppError } from '../lib/errors.ts';
import type { License } from '../models/licenses.ts';
import type { Channel } from '../models/devices.ts';
import * as devices from '../models/devices.ts';
import { RateLimiter, clientOf } from '../lib/rate-limiter.ts';
import { recordAudit } from './audit.ts';
import { publishEvent } from './events.ts';
import type { Actor, ServiceDeps } from './context.ts';
import type { ArtifactRefusal } from './requests.ts';
import type { VoucherRefusal } from './vouchers.ts';

/**
 * Why an activation, deactivation or check was refused (stable codes the portals translate as
 * offline.refusals.<code> and the API returns), the one validity rule every path applies, and the
 * one way refusals are recorded.
 */

export const REFUSALS = [
  // the request itself (a file's format and signature are refused before: offline.ts, online.ts)
  'code_malformed',
  'code_expired',
  'code_outdated',
  // the license
  'product_unknown',
  'license_unknown',
  'license_disabled',
  'not_started',
  'expired',
  'offline_not_allowed',
  'airgap_required',
  'airgap_only',
  'blacklisted',
  'no_seats',
  'no_transfers',
  'user_credentials',
  'user_not_assigned',
  // the activation
  'already_active_other_key',
  'nonce_reused',
  'activation_unknown',
  'activation_inactive',
  'already_deactivated',
  'deactivation_forged',
  'legacy_deactivation_refused',
  // consumption (License API `consume`) and usage reports (offline portal)
  'feature_unknown',
  'consumption_exceeded',
  'report_device_unknown',
  'report_chain_broken',
  'report_replayed',
  'report_rolled_back',
  'report_out_of_order',
  'report_chain_mismatch',
] as const;
export type Refusal = (typeof REFUSALS)[number];

/** Every code a refusal is recorded with (a history row's detail, an audit event's `code`). */
export type RefusalCode = Refusal | ArtifactRefusal | VoucherRefusal;

/** A refusal (kind `refusal`) with a stable code and its HTTP status; the portals say why and what to do next. */
export class ActivationError extends AppError {
  declare readonly code: Refusal;

  constructor(code: Refusal, status = 409) {
    super('refusal', code, status, `offline.refusals.${code}.why`);
  }
}

/**
 * THE validity rule (activation, online check, refresh files, air-gap codes alike): enabled, start
 * date reached, not expired, the channel allowed, the machine not blacklisted. An air-gapped
 * license is activated by codes only: a file or an API call for it is refused.
 */
export async function assertUsable(
  db: Knex,
  l: License,
  channel: Channel,
  hardwareId: string,
  at: Date,
): Promise<void> {
  if (!l.enabled) throw new ActivationError('license_disabled', 403);
  if (l.startDate && l.startDate > at) throw new ActivationError('not_started', 403);
  if (l.expiresAt && l.expiresAt <= at) throw new ActivationError('expired', 403);
  if (channel === 'airgap' && !l.airgapped) throw new ActivationError('airgap_required', 403);
  if (channel !== 'airgap' && l.airgapped) throw new ActivationError('airgap_only', 403);
  if (channel === 'offline' && !l.allowOffline) throw new ActivationError('offline_not_allowed', 403);
  if (await devices.isBlacklisted(db, l.id, hardwareId)) throw new ActivationError('blacklisted', 403);
}

/**
 * Refusals audited in full per client address and window; past it, one event says so and further
 * refusals from that address in the window are only counted (in rate_limits), so a flood cannot
 * fill the audit table or a license's history.
 */
export const REFUSAL_AUDIT_PER_CLIENT = { limit: 30, windowMs: 15 * 60_000 };

export interface RefusalDeps extends ServiceDeps {
  limiter: RateLimiter;
}

export interface RefusalRecord {
  action:
    | 'activation.refused'
    | 'deactivation.refused'
    | 'check.refused'
    | 'voucher.refused'
    | 'consumption.refused'
    | 'usage_report.refused';
  /** `portal`: a code typed into the User Portal (services/vouchers.ts). */
  channel: Channel | 'portal';
  /** SHA-256 of the request as received (never the request itself). */
  requestHash: string | null;
  hardwareId?: string | null;
  licenseId?: number | null;
  orderId?: number | null;
}

const HISTORY_EVENT = {
  'activation.refused': 'refused',
  'deactivation.refused': 'deactivation_refused',
  'check.refused': 'check_refused',
  'voucher.refused': 'refused',
  'consumption.refused': 'consumption_refused',
  'usage_report.refused': 'usage_report_refused',
} as const satisfies Record<RefusalRecord['action'], devices.HistoryEvent>;

/** Records a refusal: an audit event (and a history row when the license is known), within the per-client allowance. */
export async function recordRefusal(
  deps: RefusalDeps,
  actor: Actor,
  r: RefusalRecord,
  code: RefusalCode,
): Promise<void> {
  const at = deps.clock.now();
  // Every refusal is counted, also those past the audit allowance below.
  deps.metrics?.refusal(r.action, r.channel, code);
  const { hits } = await deps.limiter.hit(
    RateLimiter.key('refusal-audit', clientOf(actor.ip)),
    REFUSAL_AUDIT_PER_CLIENT,
  );
  if (hits > REFUSAL_AUDIT_PER_CLIENT.limit + 1) return;
  if (hits === REFUSAL_AUDIT_PER_CLIENT.limit + 1) {
    await recordAudit(deps.db, actor, at, {
      action: 'security.refusals_throttled',
      after: {
        limit: REFUSAL_AUDIT_PER_CLIENT.limit,
        windowMinutes: REFUSAL_AUDIT_PER_CLIENT.windowMs / 60_000,
        lastCode: code,
      },
    });
    return;
  }
  const licenseId = r.licenseId ?? null;
  const hardwareId = r.hardwareId ?? null;
  if (licenseId && r.channel !== 'portal')
    await devices.addHistory(
      deps.db,
      { licenseId, deviceId: null, event: HISTORY_EVENT[r.action], channel: r.channel, hardwareId, detail: code },
      at,
    );
  await recordAudit(deps.db, actor, at, {
    action: r.action,
    objectType: licenseId ? 'license' : undefined,
    objectId: licenseId ?? undefined,
    orderId: r.orderId ?? null,
    after: { code, channel: r.channel, hardwareId, requestHash: r.requestHash },
  });
  // A refusal of a known license concerns its order; one of an unknown key concerns nobody's (never published).
  if (r.action === 'activation.refused' && licenseId && r.orderId)
    await publishEvent(deps.db, deps.clock, {
      type: 'activation.refused',
      orderId: r.orderId,
      data: { licenseId, orderId: r.orderId, code, channel: r.channel, hardwareId },
    });
}
