/**
 * The License API figures (online activate and check, docs/api.md), next to the same
 * verify + sign answered by the no-database baseline server.
 *
 * The API was written at the same time as this benchmark, so nothing else in the bench depends on
 * it: a probe first asks whether /api/v1 answers in its documented shape, and when it does not
 * (not merged, or changed) the rows say "not measured" instead of failing the run. Should its
 * shape change, this file is the one to adapt.
 */
import type { Knex } from 'knex';
import { fetchOnce, runLoad, type Call, type Figures } from './load.ts';
import type { Row } from './report.ts';
import { activationRequest, checkRequest, clientAddress, newDevice, type BenchDevice } from './scenarios.ts';

export interface OnlineApiContext {
  base: string;
  baselineBase: string;
  db: Knex;
  productCode: string;
  /** License keys with free seats, reserved for the API runs. */
  keys: string[];
  seatsPerLicense: number;
  concurrency: number;
  maxSeconds: number;
  maxActivations: number;
  cpu: () => number[];
  baselineCpu: () => number[];
}

export interface OnlineFigures {
  rows: Row[];
  /** The check at 32 connections back to back, and paced below saturation (the target: p99 < 20 ms); null when not measured. */
  check: Figures | null;
  pacedCheck: Figures | null;
  /** The same check against the no-database baseline, back to back. */
  baselineCheck: Figures | null;
  /** The signed check requests of the devices activated in the run (workers.ts sends them again); empty when not measured. */
  checks: string[];
}

const json = (body: object) => ({
  body: Buffer.from(JSON.stringify(body)),
  headers: { 'content-type': 'application/json' },
});

/** A POST of { request } to /api/v1/<action>; each from another client address (the API limits per address). */
export function apiCall(action: 'activate' | 'check', request: string, i: number): Call {
  const { body, headers } = json({ request });
  return {
    method: 'POST',
    path: `/api/v1/${action}`,
    body,
    headers: { ...headers, 'x-forwarded-for': clientAddress(i) },
  };
}

/** True when /api/v1/activate refuses an empty body the documented way (400, error.code request_missing). */
async function apiPresent(base: string): Promise<boolean> {
  const r = await fetchOnce(base, { method: 'POST', path: '/api/v1/activate', ...json({}) });
  try {
    return r.status === 400 && (JSON.parse(r.body) as { error?: { code?: string } }).error?.code === 'request_missing';
  } catch {
    return false;
  }
}

export async function measureOnlineApi(ctx: OnlineApiContext): Promise<OnlineFigures> {
  const activateName = `online activate, ${ctx.concurrency} clients`;
  const checkName = `online check, ${ctx.concurrency} clients`;
  const baseName = `no database: verify + sign, ${ctx.concurrency} cl.`;
  if (!(await apiPresent(ctx.base))) {
    const note = 'not measured: no License API answering at /api/v1 in the shape of docs/api.md';
    return {
      rows: [
        { name: activateName, fig: null, baseName: '', base: null, note },
        { name: checkName, fig: null, baseName: '', base: null, note },
      ],
      check: null,
      pacedCheck: null,
      baselineCheck: null,
      checks: [],
    };
  }

  const count = Math.min(ctx.maxActivations, ctx.keys.length * ctx.seatsPerLicense);
  const devices: BenchDevice[] = Array.from({ length: count }, () => newDevice());
  const activations = devices.map((d, i) => activationRequest(d, ctx.productCode, ctx.keys[i % ctx.keys.length]!));
  const first = await fetchOnce(ctx.base, apiCall('activate', activations[0]!, 0));
  if (first.status !== 200)
    throw new Error(`online activation does not work: HTTP ${first.status} ${first.body.slice(0, 300)}`);
  const activate = await runLoad({
    base: ctx.base,
    concurrency: ctx.concurrency,
    maxRequests: count - 1 - ctx.concurrency * 5,
    maxSeconds: ctx.maxSeconds,
    cpu: ctx.cpu,
    call: (i) => apiCall('activate', activations[i + 1]!, i + 1),
  });
  const baselineActivate = await runLoad({
    base: ctx.baselineBase,
    concurrency: ctx.concurrency,
    maxRequests: 200_000,
    maxSeconds: ctx.maxSeconds,
    cpu: ctx.baselineCpu,
    call: (i) => apiCall('activate', activations[i % activations.length]!, i),
  });

  // Checks of the devices just activated, round robin, each with a fresh nonce as the SDK sends them.
  const byHardwareId = new Map(devices.map((d) => [d.hardwareId, d]));
  const active = (
    await ctx
      .db('devices')
      .where({ channel: 'online' })
      .whereNull('deactivated_at')
      .select('id', 'license_id', 'hardware_id')
  ).filter((r: { hardware_id: string }) => byHardwareId.has(r.hardware_id));
  if (!active.length) throw new Error('no device was activated online');
  const checks = Array.from({ length: Math.min(20_000, active.length * 4) }, (_, i) => {
    const r = active[i % active.length] as { id: number; license_id: number; hardware_id: string };
    return checkRequest(byHardwareId.get(r.hardware_id)!, ctx.productCode, Number(r.license_id), Number(r.id));
  });
  const sample = await fetchOnce(ctx.base, apiCall('check', checks[0]!, 0));
  if (sample.status !== 200 || !/"valid":true/.test(sample.body))
    throw new Error(`online check does not work: HTTP ${sample.status} ${sample.body.slice(0, 300)}`);
  // A check carries a fresh nonce but is not single-use: when the run outlasts the prepared ones, they are sent again.
  const check = await runLoad({
    base: ctx.base,
    concurrency: ctx.concurrency,
    maxRequests: 200_000,
    maxSeconds: ctx.maxSeconds,
    cpu: ctx.cpu,
    call: (i) => apiCall('check', checks[(i + 1) % checks.length]!, i + 1),
  });
  const baselineCheck = await runLoad({
    base: ctx.baselineBase,
    concurrency: ctx.concurrency,
    maxRequests: 200_000,
    maxSeconds: ctx.maxSeconds,
    cpu: ctx.baselineCpu,
    call: (i) => apiCall('check', checks[i % checks.length]!, i),
  });
  // Back to back, 32 connections keep 32 checks waiting: latency is then 32 ÷ throughput (Little's
  // law). Paced well below saturation, the same connections show what one check costs a client.
  const rate = Math.max(10, Math.round(check.rps / 4));
  const pacedCheck = await runLoad({
    base: ctx.base,
    concurrency: ctx.concurrency,
    maxRequests: rate * ctx.maxSeconds,
    warmup: ctx.concurrency,
    maxSeconds: ctx.maxSeconds,
    ratePerSecond: rate,
    cpu: ctx.cpu,
    call: (i) => apiCall('check', checks[i % checks.length]!, i),
  });
  const pacedBaseline = await runLoad({
    base: ctx.baselineBase,
    concurrency: ctx.concurrency,
    maxRequests: rate * ctx.maxSeconds,
    warmup: ctx.concurrency,
    maxSeconds: ctx.maxSeconds,
    ratePerSecond: rate,
    cpu: ctx.baselineCpu,
    call: (i) => apiCall('check', checks[i % checks.length]!, i),
  });
  return {
    rows: [
      { name: activateName, fig: activate, baseName, base: baselineActivate },
      { name: `${checkName}, back to back`, fig: check, baseName, base: baselineCheck },
      {
        name: `${checkName}, paced at ${rate}/s in all`,
        fig: pacedCheck,
        baseName: `same, paced at ${rate}/s`,
        base: pacedBaseline,
      },
    ],
    check,
    pacedCheck,
    baselineCheck,
    checks,
  };
}
