import { verifyDeviceSigned } from '../../sdk/src/envelope.ts';
import { EnvelopeError } from '../../sdk/src/errors.ts';
import { LicenseError } from '../../sdk/src/license-error.ts';
import {
  readActivationRequestPayload,
  readCheckRequestPayload,
  readDeactivationRequestPayload,
  readConsumptionRequestPayload,
  readUsageReportPayload,
  type ConsumptionRequestPayload,
  type UsageReportPayload,
  type ActivationRequestPayload,
  type CheckRequestPayload,
  type DeactivationRequestPayload,
} from '../../sdk/src/payloads.ts';
import type { Channel } from '../models/devices.ts';
import { AppError } from '../lib/errors.ts';
import { requestHashOf } from './activation.ts';
import { recordRefusal, type RefusalDeps, type RefusalRecord } from './refusals.ts';
import type { Actor } from './context.ts';

/**
 * Device-signed requests (offline uploads and API calls) read one way: the SDK's envelope and
 * payload readers (one implementation of the format), and every refusal of a file's format, type or
 * signature recorded like any other refusal — by the request's hash, never its content.
 */

/** Why a file was refused before its content was looked at (stable codes, like REFUSALS). */
export const ARTIFACT_REFUSALS = [
  'nothing',
  'wrong_type',
  'signature',
  'damaged',
  'too_large',
  'credentials_needed',
  'zip_damaged',
  'zip_empty',
  'zip_too_many',
  'zip_too_large',
] as const;
export type ArtifactRefusal = (typeof ARTIFACT_REFUSALS)[number];

/** A file refused before its content was looked at (kind `refusal`, offline.refusals.<code>). */
export class ArtifactError extends AppError {
  declare readonly code: ArtifactRefusal;

  constructor(code: ArtifactRefusal, status = 400) {
    super('refusal', code, status, `offline.refusals.${code}.why`);
  }
}

interface Payloads {
  'activation-request': ActivationRequestPayload;
  'deactivation-request': DeactivationRequestPayload;
  'check-request': CheckRequestPayload;
  'consumption-request': ConsumptionRequestPayload;
  'usage-report': UsageReportPayload;
}
type RequestType = keyof Payloads;
export type SignedRequest = { [T in RequestType]: { typ: T; payload: Payloads[T]; requestHash: string } }[RequestType];

const readers = {
  'activation-request': readActivationRequestPayload,
  'deactivation-request': readDeactivationRequestPayload,
  'check-request': readCheckRequestPayload,
  'consumption-request': readConsumptionRequestPayload,
  'usage-report': readUsageReportPayload,
};

const ACTION: Record<RequestType, RefusalRecord['action']> = {
  'activation-request': 'activation.refused',
  'deactivation-request': 'deactivation.refused',
  'check-request': 'check.refused',
  'consumption-request': 'consumption.refused',
  'usage-report': 'usage_report.refused',
};

function read(text: string, types: readonly RequestType[]): SignedRequest {
  let verified: ReturnType<typeof verifyDeviceSigned>;
  try {
    verified = verifyDeviceSigned(text, types);
  } catch (err) {
    if (err instanceof EnvelopeError)
      throw new ArtifactError(
        err.code === 'type'
          ? 'wrong_type'
          : err.code === 'signature'
            ? 'signature'
            : err.code === 'too_large'
              ? 'too_large'
              : 'damaged',
        err.code === 'too_large' ? 413 : 400,
      );
    throw err;
  }
  const typ = verified.typ as RequestType;
  try {
    return { typ, payload: readers[typ](verified.payload), requestHash: requestHashOf(text) } as SignedRequest;
  } catch (err) {
    if (err instanceof LicenseError) throw new ArtifactError('damaged');
    throw err;
  }
}

/** Reads and verifies a device-signed request of one of `types`; a refusal is recorded, then thrown. */
export async function readSignedRequest(
  deps: RefusalDeps,
  actor: Actor,
  channel: Channel,
  text: string,
  types: readonly RequestType[],
): Promise<SignedRequest> {
  try {
    return read(text, types);
  } catch (err) {
    if (err instanceof ArtifactError)
      await recordRefusal(
        deps,
        actor,
        { action: ACTION[types[0]], channel, requestHash: requestHashOf(text) },
        err.code,
      );
    throw err;
  }
}
