import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  LicenseError,
  USAGE_GENESIS,
  createConsumptionRequest,
  createUsageReport,
  deviceKeyFrom,
  nextUsageEntry,
  readActivationRequestPayload,
  readUsageReportPayload,
  signEnvelope,
  usageChainFault,
  usageEntryHash,
  verifyDeviceSigned,
  type LicensePayload,
  type UsageLogEntry,
} from '../../sdk/src/index.ts';
import { initArgs, runDevice, type Run } from '../helpers/cli.ts';

/** The usage log, its hash chain, usage reports and consumption requests (sdk/src/usage.ts), and the CLI's usage commands. */

const at = new Date('2026-11-30T06:00:00.000Z');
const chain = (n: number) => {
  const out: UsageLogEntry[] = [];
  for (let i = 0; i < n; i++)
    out.push(nextUsageEntry(out.at(-1), { kind: 'consumption', feature: 'render', amount: i + 1 }, at));
  return out;
};

describe('SDK: the usage log and its reports', () => {
  it('hashes an entry exactly as docs/file-formats.md § 8.7 says, and chains entries from 64 zeros', () => {
    const [first, second] = chain(2);
    const expected = crypto
      .createHash('sha256')
      .update(`PORTICO-USAGE-V1\n[1,"2026-11-30T06:00:00.000Z","consumption","render",1,"${'0'.repeat(64)}"]`)
      .digest('hex');
    assert.equal(first!.hash, expected);
    assert.equal(first!.prev, USAGE_GENESIS);
    assert.equal(second!.prev, first!.hash);
    assert.equal(second!.counter, 2);
    assert.equal(usageEntryHash(second!), second!.hash);
  });

  it('finds an edited, removed, reordered or unanchored entry', () => {
    const entries = chain(4);
    assert.equal(usageChainFault(entries), null);
    assert.equal(usageChainFault(entries.slice(2)), null, 'a piece from the middle chains on its own');
    const edited = entries.map((e) => ({ ...e }));
    edited[1]!.amount = 99;
    assert.match(usageChainFault(edited)!, /entry 2 does not match its hash/);
    assert.match(usageChainFault([entries[0]!, entries[2]!])!, /entry 3 does not follow entry 1/);
    assert.match(usageChainFault([entries[1]!, entries[0]!])!, /does not follow/);
    const rechained = [entries[0]!, nextUsageEntry(undefined, { kind: 'seats', feature: null, amount: 2 }, at)];
    assert.match(usageChainFault(rechained)!, /does not follow|not chained/);
    const forged = { ...entries[0]!, prev: 'f'.repeat(64) };
    forged.hash = usageEntryHash(forged);
    assert.match(usageChainFault([forged])!, /entry 1 does not start the chain/);
  });

  it('refuses entries no reader would accept', () => {
    assert.throws(() => nextUsageEntry(undefined, { kind: 'seats', feature: 'render', amount: 1 }, at), LicenseError);
    assert.throws(() => nextUsageEntry(undefined, { kind: 'feature', feature: null, amount: 1 }, at), LicenseError);
    assert.throws(
      () => nextUsageEntry(undefined, { kind: 'consumption', feature: 'a b', amount: 1 }, at),
      LicenseError,
    );
    assert.throws(() => nextUsageEntry(undefined, { kind: 'consumption', feature: 'x', amount: -1 }, at), LicenseError);
  });

  it('signs a report with the device key the license is bound to, at most 100 entries; a consumption of at least 1', () => {
    const key = deviceKeyFrom(crypto.generateKeyPairSync('ed25519').privateKey);
    const license = {
      product: 'acme-cad',
      licenseId: 1,
      activationId: 2,
      hardwareId: 'hw-1',
      devicePublicKey: key.publicKeyString,
      requestNonce: crypto.randomBytes(16).toString('base64url'),
      counter: 0,
    };
    const report = createUsageReport({ license, deviceKey: key, entries: chain(3) });
    const payload = readUsageReportPayload(verifyDeviceSigned(report.text, 'usage-report').payload);
    assert.deepEqual(payload.entries, chain(3));
    assert.equal(payload.activationNonce, license.requestNonce);
    const other = deviceKeyFrom(crypto.generateKeyPairSync('ed25519').privateKey);
    assert.throws(() => createUsageReport({ license, deviceKey: other, entries: chain(1) }), { code: 'device_key' });
    assert.throws(() => createUsageReport({ license, deviceKey: key, entries: chain(101) }), { code: 'input' });
    assert.throws(() => createUsageReport({ license, deviceKey: key, entries: [] }), { code: 'input' });
    assert.throws(() => createConsumptionRequest({ license, deviceKey: key, feature: 'render', amount: 0 }), {
      code: 'input',
    });
    assert.equal(createConsumptionRequest({ license, deviceKey: key, feature: 'render', amount: 5 }).payload.amount, 5);
  });
});

describe('SDK: portico-device usage record / usage report', function () {
  this.timeout(60_000);
  const server = crypto.generateKeyPairSync('ed25519');
  const KID = 'ed25519-usageTestKey0000';
  let work: string;
  let dir: string;
  const cli = (...args: string[]): Promise<Run> => runDevice({ dir, cwd: work }, ...args);
  const ok = (r: Run) => {
    assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
    return r;
  };

  beforeEach(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-usage-'));
    dir = path.join(work, 'state');
    fs.writeFileSync(
      path.join(work, 'portico-keys.json'),
      JSON.stringify({
        keys: [{ kid: KID, status: 'active', pem: server.publicKey.export({ type: 'spki', format: 'pem' }) }],
      }),
    );
  });
  afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

  async function installed() {
    ok(await cli(...initArgs('7KQ2-MX4P-0111', 'hw-usage')));
    ok(await cli('request'));
    const request = readActivationRequestPayload(
      verifyDeviceSigned(fs.readFileSync(path.join(work, 'activation-request.req'), 'utf8'), 'activation-request')
        .payload,
    );
    const now = Date.now();
    const payload: LicensePayload = {
      v: 1,
      product: request.product,
      licenseId: 7,
      licenseKey: request.licenseKey,
      user: null,
      activationId: 21,
      hardwareId: request.hardwareId,
      devicePublicKey: request.devicePublicKey,
      requestNonce: request.nonce,
      issuedAt: new Date(now - 1000).toISOString(),
      counter: 0,
      licenseType: 'perpetual',
      trial: false,
      startsAt: null,
      expiresAt: null,
      leaseEndsAt: new Date(now + 30 * 86_400_000).toISOString(),
      maintenanceUntil: null,
      maxActivations: 2,
      floating: null,
      features: [
        { code: 'export', type: 'activation', maxConsumption: null },
        { code: 'render-minutes', type: 'consumption', maxConsumption: 600 },
      ],
    };
    fs.writeFileSync(path.join(work, 'license.lic'), signEnvelope('license', KID, payload, server.privateKey));
    ok(await cli('activate', 'license.lic'));
  }

  it('needs an installed license; records chained entries; reports what is new, again --from an entry; refuses what the license does not hold', async () => {
    ok(await cli(...initArgs('7KQ2-MX4P-0111', 'hw-usage')));
    const none = await cli('usage', 'record', '--seats', '1');
    assert.equal(none.status, 1);
    assert.match(none.stderr, /no license is installed/);
    fs.rmSync(dir, { recursive: true, force: true });
    await installed();

    for (const [args, message] of [
      [['usage', 'record', '--consume', 'export=1'], /"export" is not a consumption feature/],
      [['usage', 'record', '--feature', 'nothing'], /the license has no feature "nothing"/],
      [['usage', 'record', '--consume', 'render-minutes=-3'], /whole number/],
      [['usage', 'record'], /needs --consume, --feature or --seats/],
      [['usage', 'frobnicate'], /not a usage command/],
      [['usage', 'report', '--from', 'x'], /entry number/],
    ] as const) {
      const r = await cli(...args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message);
    }
    assert.equal((await cli('usage', 'report')).status, 1, 'nothing recorded yet');

    ok(await cli('usage', 'record', '--consume', 'render-minutes=30', '--feature', 'export=2', '--seats', '4'));
    ok(await cli('usage', 'record', '--consume', 'render-minutes=5'));
    const log = JSON.parse(fs.readFileSync(path.join(dir, 'usage-log.json'), 'utf8'));
    assert.deepEqual(
      log.entries.map((e: UsageLogEntry) => [e.counter, e.kind, e.feature, e.amount]),
      [
        [1, 'consumption', 'render-minutes', 30],
        [2, 'feature', 'export', 2],
        [3, 'seats', null, 4],
        [4, 'consumption', 'render-minutes', 5],
      ],
    );
    assert.equal(usageChainFault(log.entries), null);

    assert.match(ok(await cli('usage', 'report')).stdout, /entries 1 to 4/);
    const report = readUsageReportPayload(
      verifyDeviceSigned(fs.readFileSync(path.join(work, 'usage-report.usage'), 'utf8'), 'usage-report').payload,
    );
    assert.deepEqual(report.entries, log.entries);
    assert.equal(report.licenseId, 7);
    assert.equal((await cli('usage', 'report')).status, 1, 'nothing new since the last report');
    ok(await cli('usage', 'record', '--seats', '2'));
    assert.match(ok(await cli('usage', 'report', '--out', 'second.usage')).stdout, /entries 5 to 5/);
    assert.match(ok(await cli('usage', 'report', '--from', '3', '--out', 'again.usage')).stdout, /entries 3 to 5/);
  });
});
