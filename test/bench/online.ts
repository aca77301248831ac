/**
 * ROOM FOR THE LICENSE API FIGURES (online activate and check, SPEC §7).
 *
 * The License API (/api/v1) is being written at the same time as this benchmark, so nothing here
 * depends on it yet: measureOnlineApi answers "not measured" rows and run.ts prints them in place.
 * When the API is merged, replace the body with real measurements, for example:
 *
 *   - online activate: each call a new device (makeDevice() in test/helpers/device.ts signs the
 *     request the SDK would send) on ctx.keys[i % ctx.keys.length]; build the bodies before the
 *     run, as activationUploads() in scenarios.ts does, and send them with runLoad() (load.ts) at
 *     ctx.concurrency clients; baseline: the no-database server (baseline-server.ts) given a JSON
 *     route doing the same verify + sign;
 *   - online check at 32 connections (the target: p99 < 20 ms): activate N devices first,
 *     then check them round-robin for ctx.maxSeconds; baseline: the same check answered by the
 *     no-database server.
 *
 * Each keeps to loopback, a bounded request count and time (runLoad enforces both).
 */
import type { Row } from './report.ts';

export interface OnlineApiContext {
  base: string;
  productCode: string;
  /** License keys with free seats, reserved for the API runs. */
  keys: string[];
  concurrency: number;
  maxSeconds: number;
}

export async function measureOnlineApi(ctx: OnlineApiContext): Promise<Row[]> {
  const note = `not measured: the License API (/api/v1) is not merged yet — see test/bench/online.ts`;
  return [
    { name: `online activate, ${ctx.concurrency} clients`, fig: null, baseName: '', base: null, note },
    { name: `online check, ${ctx.concurrency} clients (target p99 < 20 ms)`, fig: null, baseName: '', base: null, note },
  ];
}
