import type { DeviceKey } from './device.ts';
import type { KeyInput } from './envelope.ts';
import { LicenseError } from './license-error.ts';
import { applyRefresh, verifyLicense, type LicenseInfo } from './license.ts';
import type { UsageEntry } from './payloads.ts';
import { createConsumptionRequest } from './usage.ts';
import {
  createCheckRequest,
  createDeactivationRequest,
  verifyDeactivationReceipt,
  type DeactivationReceipt,
  type LicenseReference,
} from './requests.ts';

/**
 * The License API client (`/api/v1`): the same signed requests as the offline portal, sent over
 * HTTP; every answer is verified exactly as a file from the portal would be (trusted server key,
 * bound to this product, machine, device key and request). Uses Node's global fetch, nothing else.
 */

/** Error codes the client makes itself; every other code is the server's (`{ error: { code } }`). */
export const CLIENT_ERROR_CODES = [
  'network', // the server could not be reached, the connection broke, or the call timed out (status 0)
  'redirect', // the server answered with a redirect: the base URL is not the server's own
  'bad_response', // the answer is not the JSON the API gives (a proxy's page, a cut-off body, a missing field)
] as const;

/** A call the License API (or the way to it) refused. `code` is stable; `message` is for people. */
export class ApiCallError extends Error {
  readonly code: string;
  /** The HTTP status, 0 when no answer came (`network`). */
  readonly status: number;
  /** From Retry-After (e.g. with `rate_limited`): seconds to wait before calling again. */
  readonly retryAfterSeconds?: number;

  constructor(
    code: string,
    status: number,
    message = code,
    options: { retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ApiCallError';
    this.code = code;
    this.status = status;
    if (options.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export interface PorticoClientOptions {
  /** The server's base URL (`https://licenses.example.com`, a path prefix is kept). */
  baseUrl: string;
  /** kid → public key of the server keys the device trusts (see trustedKeysFromWellKnown). */
  trustedKeys: ReadonlyMap<string, KeyInput>;
  /** Another fetch (a proxy agent, a test double); default the global fetch. */
  fetch?: typeof globalThis.fetch;
  /** Per call, default 15 000 ms; a call that takes longer is ApiCallError `network`. */
  timeoutMs?: number;
  /** The time licenses are checked against; default the system clock. */
  now?: () => Date;
}

/** A license or refresh file as received from the API, verified: store `text` to verify it again offline. */
export interface OnlineLicense extends LicenseInfo {
  /** The armoured file exactly as received. */
  text: string;
}

export interface OnlineActivation extends OnlineLicense {
  /** The server had answered this very request before (a retry): no second seat was used. */
  repeated: boolean;
}

export interface OnlineCheck extends OnlineLicense {
  /** Floating licenses: when the slot lapses unless the device checks in again; null otherwise. */
  floatingExpiresAt: string | null;
}

/** The answer to `consume`: the use of the feature in its period after this consumption. */
export interface OnlineConsumption {
  feature: string;
  amount: number;
  used: number;
  /** The maximum per period; null = no maximum. */
  max: number | null;
  /** `all` (the license's whole life) or the month, `YYYY-MM` (UTC). */
  period: string;
  /** True when this consumption went past the maximum (allowed as overage). */
  overage: boolean;
  repeated: boolean;
  nonce: string;
}

export interface OnlineReceipt extends DeactivationReceipt {
  repeated: boolean;
  /** The armoured receipt exactly as received. */
  text: string;
}

export interface OnlineActivateInput {
  /** The armoured request from createActivationRequest (`.text`). */
  request: string;
  /** Its nonce (`.nonce`): the license must answer this very request. */
  nonce: string;
  /** What the license must be bound to: the request's product, hardware id and device key. */
  expected: { product: string; hardwareId: string; devicePublicKey: KeyInput };
  /** For a user-based license: the license user's credentials (sent to the server, never stored). */
  user?: { email: string; password: string };
}

export const DEFAULT_TIMEOUT_MS = 15_000;
/** Answers larger than this are not read (an envelope is at most 64 KiB). */
const MAX_RESPONSE_BYTES = 256 * 1024;

export class PorticoClient {
  readonly baseUrl: string;
  private readonly trustedKeys: ReadonlyMap<string, KeyInput>;
  private readonly fetchImpl: typeof globalThis.fetch;
  private readonly timeoutMs: number;
  private readonly now: () => Date;

  constructor(options: PorticoClientOptions) {
    this.baseUrl = normaliseBaseUrl(options.baseUrl);
    if (!options.trustedKeys || options.trustedKeys.size === 0)
      throw new LicenseError('input', 'trustedKeys must list at least one server key');
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
      throw new LicenseError('input', 'timeoutMs must be a positive number of milliseconds');
    const fetchImpl = options.fetch ?? globalThis.fetch;
    if (typeof fetchImpl !== 'function')
      throw new LicenseError('input', 'no fetch: Node 20 or later has one, or pass options.fetch');
    this.trustedKeys = options.trustedKeys;
    this.fetchImpl = fetchImpl;
    this.timeoutMs = timeoutMs;
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Online activation: sends the request, verifies the license file that comes back (trusted key,
   * product, hardware id, device key, the request's nonce, dates). A refusal is ApiCallError
   * (e.g. `no_seats`, `license_unknown`), a bad answer LicenseError.
   */
  activate(input: OnlineActivateInput): Promise<OnlineActivation> {
    return this.activateAt('activate', input);
  }

  /**
   * Redeems a code: `input.request` is an activation request made with `voucher` (createActivationRequest).
   * The server redeems the code into a new license and activates it on this device; the answer is
   * verified exactly as activate's (the new license key is in `licenseKey`). A used, voided, expired
   * or unknown code is ApiCallError `voucher_used`, `voucher_voided`, `voucher_expired`, `voucher_unknown`; a code for
   * another product than the request is `voucher_other_product` (not spent).
   */
  redeem(input: OnlineActivateInput): Promise<OnlineActivation> {
    return this.activateAt('redeem', input);
  }

  private async activateAt(endpoint: 'activate' | 'redeem', input: OnlineActivateInput): Promise<OnlineActivation> {
    if (typeof input?.request !== 'string' || typeof input.nonce !== 'string' || !input.expected) {
      throw new LicenseError('input', `${endpoint} takes { request, nonce, expected } from createActivationRequest`);
    }
    const body: Record<string, unknown> = { request: input.request };
    if (input.user) body.user = { email: input.user.email, password: input.user.password };
    const answer = await this.call(endpoint, body);
    const text = stringField(answer, 'license');
    const license = verifyLicense(text, {
      ...input.expected,
      trustedKeys: this.trustedKeys,
      requestNonce: input.nonce,
      now: this.now(),
    });
    if (typeof answer.activationId === 'number' && answer.activationId !== license.activationId) {
      throw new LicenseError(
        'activation',
        `the server named activation ${answer.activationId} but the license is for activation ${license.activationId}`,
      );
    }
    return { ...license, text, repeated: answer.repeated === true };
  }

  /**
   * Online check: proves with the device key that this device holds the activation and applies the
   * refresh file that comes back (same activation, a greater counter, valid now). `license` may
   * have run out of lease: renewing it is the point.
   */
  async check(license: LicenseInfo, deviceKey: DeviceKey): Promise<OnlineCheck> {
    const request = createCheckRequest({ license, deviceKey, now: this.now() });
    const answer = await this.call('check', { request: request.text });
    if (answer.valid !== true)
      throw new ApiCallError('bad_response', 200, 'the check answer does not say the license is valid');
    const text = stringField(answer, 'license');
    const next = applyRefresh(license, text, { trustedKeys: this.trustedKeys, now: this.now() });
    const floating = answer.floatingExpiresAt;
    return { ...next, text, floatingExpiresAt: typeof floating === 'string' ? floating : null };
  }

  /**
   * Records `amount` units of a consumption feature against the license (License API `consume`).
   * Pass `nonce` again (from `request.nonce` of an earlier call that got no answer) to retry: the
   * server counts a nonce once and answers a repeat with its first answer. Past the maximum (and any
   * overage the license allows) the call is refused with ApiCallError `consumption_exceeded`.
   */
  async consume(
    license: Pick<LicenseInfo, 'product' | 'licenseId' | 'activationId' | 'hardwareId' | 'devicePublicKey'>,
    deviceKey: DeviceKey,
    feature: string,
    amount: number,
    request = createConsumptionRequest({ license, deviceKey, feature, amount, now: this.now() }),
  ): Promise<OnlineConsumption> {
    const answer = await this.call('consume', { request: request.text });
    if (answer.feature !== feature || typeof answer.used !== 'number')
      throw new ApiCallError('bad_response', 200, 'the consume answer does not name the feature and its use');
    return {
      feature,
      amount: Number(answer.amount),
      used: answer.used,
      max: typeof answer.max === 'number' ? answer.max : null,
      period: String(answer.period),
      overage: answer.overage === true,
      repeated: answer.repeated === true,
      nonce: request.nonce,
    };
  }

  /** Online deactivation: frees the seat, verifies the receipt (this license, this machine, this request). */
  deactivate(
    license: LicenseReference,
    deviceKey: DeviceKey,
    usage: readonly UsageEntry[] = [],
  ): Promise<OnlineReceipt> {
    return this.giveBack('deactivate', license, deviceKey, usage);
  }

  /** Releases a floating license's slot: the same request and receipt as deactivate. */
  release(license: LicenseReference, deviceKey: DeviceKey, usage: readonly UsageEntry[] = []): Promise<OnlineReceipt> {
    return this.giveBack('release', license, deviceKey, usage);
  }

  private async giveBack(
    endpoint: 'deactivate' | 'release',
    license: LicenseReference,
    deviceKey: DeviceKey,
    usage: readonly UsageEntry[],
  ): Promise<OnlineReceipt> {
    const request = createDeactivationRequest({ license, deviceKey, usage, now: this.now() });
    const answer = await this.call(endpoint, { request: request.text });
    const text = stringField(answer, 'receipt');
    const receipt = verifyDeactivationReceipt(text, { trustedKeys: this.trustedKeys, license, nonce: request.nonce });
    return { ...receipt, text, repeated: answer.repeated === true };
  }

  /** POSTs JSON to one endpoint; the parsed 2xx answer, or ApiCallError. */
  private async call(endpoint: string, body: object): Promise<Record<string, unknown>> {
    const url = `${this.baseUrl}/api/v1/${endpoint}`;
    let res: Response;
    let text: string;
    try {
      res = await this.fetchImpl(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body),
        redirect: 'manual',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await readLimited(res);
    } catch (err) {
      if (err instanceof ApiCallError) throw err;
      const name = (err as Error)?.name;
      const timedOut = name === 'TimeoutError' || name === 'AbortError';
      const reason = timedOut ? `no answer within ${this.timeoutMs} ms` : describeNetworkError(err);
      throw new ApiCallError('network', 0, `cannot reach ${this.baseUrl}: ${reason}`, { cause: err });
    }
    if (res.status >= 300 && res.status < 400) {
      const location = res.headers.get('location');
      throw new ApiCallError(
        'redirect',
        res.status,
        `the server redirects ${url}${location ? ` to ${clean(location)}` : ''}: use the server's own base URL`,
      );
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      doc = undefined;
    }
    const isObject = typeof doc === 'object' && doc !== null && !Array.isArray(doc);
    if (res.status < 200 || res.status >= 300) {
      const error = isObject ? (doc as Record<string, unknown>).error : undefined;
      const retryAfterSeconds = retryAfter(res.headers.get('retry-after'), this.now());
      if (typeof error === 'object' && error !== null && typeof (error as Record<string, unknown>).code === 'string') {
        const { code, message } = error as Record<string, unknown>;
        throw new ApiCallError(
          clean(String(code)).slice(0, 64),
          res.status,
          clean(typeof message === 'string' && message ? message : String(code)),
          { retryAfterSeconds },
        );
      }
      throw new ApiCallError(
        'bad_response',
        res.status,
        `the server answered HTTP ${res.status} without an API error: is ${this.baseUrl} a Portico server?`,
        { retryAfterSeconds },
      );
    }
    if (!isObject)
      throw new ApiCallError(
        'bad_response',
        res.status,
        `the answer of ${url} is not a JSON object: is ${this.baseUrl} a Portico server?`,
      );
    return doc as Record<string, unknown>;
  }
}

function normaliseBaseUrl(base: string): string {
  let url: URL;
  try {
    url = new URL(String(base));
  } catch {
    throw new LicenseError('input', `the server's base URL must be an absolute http(s) URL, not "${base}"`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new LicenseError('input', "the server's base URL must be an http or https URL");
  if (url.username || url.password) throw new LicenseError('input', "the server's base URL must not carry credentials");
  url.search = '';
  url.hash = '';
  return url.href.replace(/\/+$/, '');
}

function stringField(answer: Record<string, unknown>, name: string): string {
  const value = answer[name];
  if (typeof value !== 'string' || !value) throw new ApiCallError('bad_response', 200, `the answer has no "${name}"`);
  return value;
}

/** The body as text, refusing (and cancelling) one larger than MAX_RESPONSE_BYTES. */
async function readLimited(res: Response): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_RESPONSE_BYTES) {
      await reader.cancel().catch(() => undefined);
      throw new ApiCallError('bad_response', res.status, `the answer is larger than ${MAX_RESPONSE_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Retry-After as seconds: a number of seconds or an HTTP date. */
function retryAfter(header: string | null, now: Date): number | undefined {
  if (header === null) return undefined;
  const value = header.trim();
  if (/^\d{1,10}$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now.getTime()) / 1000));
}

/** fetch hides the reason in `cause` ("ECONNREFUSED", "ENOTFOUND" …). */
function describeNetworkError(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } })?.cause;
  const detail =
    typeof cause?.code === 'string'
      ? cause.code
      : typeof cause?.message === 'string'
        ? cause.message
        : (err as Error)?.message;
  return clean(String(detail ?? 'network error'));
}

/** Text from the server, safe to print: no control characters, bounded. */
function clean(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this removes.
  return text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').slice(0, 500);
}
