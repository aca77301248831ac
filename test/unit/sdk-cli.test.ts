import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  NONCE_PATTERN,
  devicePublicKeyString,
  readActivationRequestPayload,
  readDeactivationRequestPayload,
  signEnvelope,
  verifyDeviceSigned,
  type ActivationRequestPayload,
  type EnvelopeType,
  type LicensePayload,
} from '../../sdk/src/index.ts';
import { initArgs, ok as okInProcess, runDevice, type Run } from '../helpers/cli.ts';

/**
 * Drives the portico-device CLI as an end user would, in process (runCli: the same arguments, output
 * and exit codes as the binary; test/e2e/device-cli.test.ts runs the binary itself).
 */

const server = crypto.generateKeyPairSync('ed25519');
const KID = 'ed25519-cliTestKey000000';
const DAY = 86_400_000;

function signAsServer(typ: EnvelopeType, payload: object): string {
  return signEnvelope(typ, KID, payload, server.privateKey);
}

function licenseFor(request: ActivationRequestPayload, change: Partial<LicensePayload> = {}): string {
  const now = Date.now();
  const payload: LicensePayload = {
    v: 1,
    product: request.product,
    licenseId: 7,
    licenseKey: request.licenseKey,
    user: request.user,
    activationId: 21,
    hardwareId: request.hardwareId,
    devicePublicKey: request.devicePublicKey,
    requestNonce: request.nonce,
    issuedAt: new Date(now - 1000).toISOString(),
    counter: 0,
    licenseType: 'time-limited',
    trial: false,
    startsAt: null,
    expiresAt: new Date(now + 90 * DAY).toISOString(),
    leaseEndsAt: new Date(now + 30 * DAY).toISOString(),
    maintenanceUntil: null,
    maxActivations: 2,
    floating: null,
    features: [
      { code: 'export', type: 'activation', maxConsumption: null },
      { code: 'render-minutes', type: 'consumption', maxConsumption: 600 },
    ],
    ...change,
  };
  return signAsServer(change.counter ? 'refresh' : 'license', payload);
}

describe('SDK: the portico-device CLI (sdk/src/cli.ts)', function () {
  this.timeout(120_000);
  let work: string;
  let dir: string;

  const cli = (...args: string[]): Promise<Run> => runDevice({ dir, cwd: work }, ...args);
  const write = (name: string, text: string) => {
    fs.writeFileSync(path.join(work, name), text);
    return name;
  };
  const read = (name: string) => fs.readFileSync(path.join(work, name), 'utf8');
  const noStackTrace = (r: Run) => assert.doesNotMatch(r.stderr + r.stdout, /\n\s+at /, 'a stack trace was printed');
  const ok = (r: Run) => {
    assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
    return r;
  };

  beforeEach(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-cli-'));
    dir = path.join(work, 'state');
    write(
      'portico-keys.json',
      JSON.stringify({
        keys: [{ kid: KID, status: 'active', pem: server.publicKey.export({ type: 'spki', format: 'pem' }) }],
      }),
    );
  });

  afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

  it('init → request → activate → status → refresh → deactivate → status → receipt', async () => {
    const init = ok(await cli(...initArgs('7KQ2-MX4P-0111', 'hw-cli-1'), '--hostname', 'test-host'));
    assert.match(init.stdout, /ACME-CAD/);
    const devicePem = fs.readFileSync(path.join(dir, 'device-key.pem'), 'utf8');
    const devicePublicKey = devicePublicKeyString(crypto.createPublicKey(devicePem));
    if (process.platform !== 'win32') assert.equal(fs.statSync(path.join(dir, 'device-key.pem')).mode & 0o777, 0o600);

    assert.equal((await cli('status')).status, 3, 'no license yet');

    // request: a device-signed activation request with the right fields, its nonce remembered
    ok(await cli('request'));
    const requestText = read('activation-request.req');
    const request = readActivationRequestPayload(verifyDeviceSigned(requestText, 'activation-request').payload);
    assert.equal(request.product, 'ACME-CAD');
    assert.equal(request.licenseKey, '7KQ2-MX4P-0111');
    assert.equal(request.user, null);
    assert.equal(request.hardwareId, 'hw-cli-1');
    assert.equal(request.hostname, 'test-host');
    assert.equal(request.devicePublicKey, devicePublicKey);
    assert.match(request.nonce, NONCE_PATTERN);
    assert.ok(Math.abs(Date.parse(request.createdAt) - Date.now()) < 60_000);
    assert.equal(
      JSON.parse(fs.readFileSync(path.join(dir, 'pending-request.json'), 'utf8')).activation.nonce,
      request.nonce,
    );

    // activate: answers to another request or from an untrusted key are refused, nothing installed
    const wrongNonce = await cli(
      'activate',
      write('other.lic', licenseFor(request, { requestNonce: crypto.randomBytes(16).toString('base64url') })),
    );
    assert.equal(wrongNonce.status, 1);
    assert.match(wrongNonce.stderr, /refused \(nonce\)/);
    noStackTrace(wrongNonce);
    const forged = signEnvelope('license', KID, { ...request }, crypto.generateKeyPairSync('ed25519').privateKey);
    const forgedRun = await cli('activate', write('forged.lic', forged));
    assert.equal(forgedRun.status, 1);
    assert.match(forgedRun.stderr, /refused \(signature\)/);
    assert.equal(fs.existsSync(path.join(dir, 'license.lic')), false);

    const activate = ok(await cli('activate', write('license.lic', licenseFor(request))));
    assert.match(activate.stdout, /License activated/);
    assert.match(activate.stdout, /ACME-CAD/);
    assert.match(activate.stdout, /time-limited/);
    assert.match(activate.stdout, /expires:\s+\d{4}-/);
    assert.match(activate.stdout, /lease ends:\s+\d{4}-/);

    const status = ok(await cli('status'));
    assert.match(status.stdout, /License valid/);
    assert.match(status.stdout, /lease ends/);

    // refresh: a newer file is taken, the same one again is not
    ok(await cli('refresh', write('refresh-1.lic', licenseFor(request, { counter: 1 }))));
    const again = await cli('refresh', 'refresh-1.lic');
    assert.equal(again.status, 1);
    assert.match(again.stderr, /refused \(counter\)/);

    // deactivate: signed by the same device key, names the activation, carries usage
    const deactivate = ok(
      await cli('deactivate', '--out', 'give-back.req', '--usage', 'render-minutes=42', '--usage', 'export=0'),
    );
    assert.match(deactivate.stdout, /give-back\.req/);
    const verified = verifyDeviceSigned(read('give-back.req'), 'deactivation-request');
    const deactivation = readDeactivationRequestPayload(verified.payload);
    assert.equal(deactivation.devicePublicKey, devicePublicKey);
    assert.equal(deactivation.licenseId, 7);
    assert.equal(deactivation.activationId, 21);
    assert.equal(deactivation.hardwareId, 'hw-cli-1');
    assert.equal(deactivation.activationNonce, request.nonce);
    assert.notEqual(deactivation.nonce, request.nonce);
    assert.deepEqual(deactivation.usage, [
      { feature: 'render-minutes', amount: 42 },
      { feature: 'export', amount: 0 },
    ]);
    assert.equal(fs.existsSync(path.join(dir, 'license.lic')), false);
    assert.equal(fs.existsSync(path.join(dir, 'license.lic.deactivated')), true);

    const after = await cli('status');
    assert.equal(after.status, 3);
    assert.match(after.stdout, /No license installed/);

    // receipt: only the one answering this deactivation request
    const receipt = (nonce: string) => ({
      v: 1,
      licenseId: 7,
      activationId: 21,
      hardwareId: 'hw-cli-1',
      deactivationNonce: nonce,
      deactivatedAt: new Date().toISOString(),
    });
    const wrongReceipt = await cli(
      'receipt',
      write('wrong.receipt', signAsServer('deactivation-receipt', receipt(request.nonce))),
    );
    assert.equal(wrongReceipt.status, 1);
    assert.match(wrongReceipt.stderr, /refused \(nonce\)/);
    const confirmed = ok(
      await cli(
        'receipt',
        write('deactivation.receipt', signAsServer('deactivation-receipt', receipt(deactivation.nonce))),
      ),
    );
    assert.match(confirmed.stdout, /Deactivation confirmed/);
    assert.equal(fs.existsSync(path.join(dir, 'license.lic.deactivated')), false);
  });

  it('a user-based license: the request names the user and carries no password', async () => {
    ok(await cli('init', '--product', 'ACME-CAD', '--user', 'alice@example.com', '--keys', 'portico-keys.json'));
    const run = ok(await cli('request', '--out', 'alice.req'));
    assert.match(run.stdout, /password of alice@example\.com/);
    const payload = verifyDeviceSigned(read('alice.req'), 'activation-request').payload;
    const request = readActivationRequestPayload(payload);
    assert.equal(request.user, 'alice@example.com');
    assert.equal(request.licenseKey, null);
    assert.match(request.hardwareId, /^[0-9a-f]{32}$/, 'the hardware id of this machine');
    assert.equal(
      Object.keys(payload).some((k) => /pass/i.test(k)),
      false,
    );
  });

  it('a license for another machine or product is refused at activation', async () => {
    ok(await cli(...initArgs('K-1', 'hw-cli-2')));
    ok(await cli('request'));
    const request = readActivationRequestPayload(
      verifyDeviceSigned(read('activation-request.req'), 'activation-request').payload,
    );
    const otherMachine = await cli('activate', write('a.lic', licenseFor(request, { hardwareId: 'hw-elsewhere' })));
    assert.equal(otherMachine.status, 1);
    assert.match(otherMachine.stderr, /refused \(hardware\)/);
    const otherProduct = await cli('activate', write('b.lic', licenseFor(request, { product: 'OTHER-APP' })));
    assert.equal(otherProduct.status, 1);
    assert.match(otherProduct.stderr, /refused \(product\)/);
    const requestAsLicense = await cli('activate', 'activation-request.req');
    assert.equal(requestAsLicense.status, 1);
    assert.match(requestAsLicense.stderr, /refused \(type\)/);
  });

  it('usage errors exit with 2 and the usage, without a stack trace', async () => {
    const cases: string[][] = [
      [],
      ['frobnicate'],
      ['init', '--key', 'K', '--keys', 'portico-keys.json'],
      ['init', '--product', 'ACME-CAD', '--key', 'K', '--user', 'a@example.com', '--keys', 'portico-keys.json'],
      [...initArgs('K', 'not valid!')],
      ['init', '--product', 'bad code!', '--key', 'K', '--keys', 'portico-keys.json'],
      ['request', '--bogus'],
      ['activate'],
      ['activate', 'a.lic', 'b.lic'],
      ['deactivate', '--usage', 'export'],
      ['help', 'nope'],
    ];
    for (const args of cases) {
      const r = await cli(...args);
      assert.equal(r.status, 2, `${args.join(' ')} → ${r.status}\n${r.stderr}`);
      assert.match(r.stderr, /^portico-device: .+\nUsage: portico-device/, args.join(' '));
      noStackTrace(r);
    }
    assert.equal(fs.existsSync(path.join(dir, 'config.json')), false, 'nothing set up by a refused init');
  });

  it('failures exit with 1 and say what to do; help exits with 0', async () => {
    const notSetUp = await cli('request');
    assert.equal(notSetUp.status, 1);
    assert.match(notSetUp.stderr, /run "init" first/);
    noStackTrace(notSetUp);

    const missingKeys = await cli('init', '--product', 'ACME-CAD', '--key', 'K', '--keys', 'missing.json');
    assert.equal(missingKeys.status, 1);
    assert.match(missingKeys.stderr, /missing\.json: no such file/);

    const badKeys = await cli(
      'init',
      '--product',
      'ACME-CAD',
      '--key',
      'K',
      '--keys',
      write('bad.json', '{"keys":[]}'),
    );
    assert.equal(badKeys.status, 1);
    assert.match(badKeys.stderr, /not a usable Portico key document/);

    ok(await cli(...initArgs('K', 'hw-cli-3')));
    const noRequest = await cli('activate', write('x.lic', 'junk'));
    assert.equal(noRequest.status, 1);
    assert.match(noRequest.stderr, /run "portico-device request" first/);
    const noLicense = await cli('deactivate');
    assert.equal(noLicense.status, 1);
    assert.match(noLicense.stderr, /no license is installed/);
    ok(await cli('request'));
    const damaged = await cli('activate', 'x.lic');
    assert.equal(damaged.status, 1);
    assert.match(damaged.stderr, /refused \(armor\)/);
    noStackTrace(damaged);

    const help = ok(await cli('--help'));
    for (const command of ['init', 'request', 'activate', 'status', 'deactivate', 'receipt', 'refresh'])
      assert.match(help.stdout, new RegExp(`\\n  ${command} `));
    assert.match(ok(await cli('help', 'deactivate')).stdout, /--usage <feature>=<amount>/);
    assert.match(
      ok(await cli('activate', '--help')).stdout,
      /Usage: portico-device \[--dir <folder>\] activate <license file>/,
    );
  });
});

describe('SDK: the CLI never installs a license file older than one it has had', function () {
  this.timeout(60_000);
  let work: string;
  let dir: string;
  let request: ActivationRequestPayload;

  const cli = (...args: string[]) => runDevice({ dir, cwd: work }, ...args);
  const write = (name: string, text: string) => {
    fs.writeFileSync(path.join(work, name), text);
    return name;
  };
  const installed = () => fs.readFileSync(path.join(dir, 'license.lic'), 'utf8');
  const refused = async (args: string[], message: RegExp) => {
    const run = await cli(...args);
    assert.equal(run.status, 1, `${args.join(' ')} was not refused\n${run.stdout}`);
    assert.match(run.stderr, /refused \(counter\): /);
    assert.match(run.stderr, message);
    assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
  };

  beforeEach(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-rollback-'));
    dir = path.join(work, 'state');
    write(
      'portico-keys.json',
      JSON.stringify({
        keys: [{ kid: KID, status: 'active', pem: server.publicKey.export({ type: 'spki', format: 'pem' }) }],
      }),
    );
    okInProcess(await cli(...initArgs('K-1', 'hw-rollback')));
    okInProcess(await cli('request'));
    request = readActivationRequestPayload(
      verifyDeviceSigned(fs.readFileSync(path.join(work, 'activation-request.req'), 'utf8'), 'activation-request')
        .payload,
    );
  });

  afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

  it('counter 3 installed: older files, and another file with counter 3, are refused by every command; the same file again is not', async () => {
    const original = write('original.lic', licenseFor(request));
    okInProcess(await cli('activate', original));
    const third = write('refresh-3.lic', licenseFor(request, { counter: 3 }));
    okInProcess(await cli('refresh', third));

    await refused(
      ['activate', original],
      /counter is 0, the device has had 3\): an older file is never installed again/,
    );
    await refused(['refresh', write('refresh-2.lic', licenseFor(request, { counter: 2 }))], /not newer/);
    await refused(['activate', 'refresh-2.lic'], /counter is 2, the device has had 3/);
    const otherThird = write('other-3.lic', licenseFor(request, { counter: 3, maxActivations: 9 }));
    await refused(
      ['activate', otherThird],
      /counter 3 of license 7, activation 21, as the one installed, but says something else/,
    );
    assert.equal(installed(), fs.readFileSync(path.join(work, third), 'utf8'), 'nothing was replaced');

    assert.match(
      okInProcess(await cli('activate', third)).stdout,
      /License activated/,
      'the same file again changes nothing',
    );
    const counters = JSON.parse(fs.readFileSync(path.join(dir, 'counters.json'), 'utf8'));
    assert.deepEqual(
      counters.activations.map((m: { licenseId: number; activationId: number; counter: number; closed: boolean }) => [
        m.licenseId,
        m.activationId,
        m.counter,
        m.closed,
      ]),
      [[7, 21, 3, false]],
    );
    if (process.platform !== 'win32') assert.equal(fs.statSync(path.join(dir, 'counters.json')).mode & 0o777, 0o600);

    // Deleting the installed file does not make the device forget it.
    fs.rmSync(path.join(dir, 'license.lic'));
    await refused(['activate', original], /the device has had 3/);
    okInProcess(await cli('activate', third));
  });

  it('after deactivate, no file of that activation is installed again; a new activation is', async () => {
    const original = write('original.lic', licenseFor(request));
    okInProcess(await cli('activate', original));
    okInProcess(await cli('deactivate'));
    await refused(['activate', original], /license 7, activation 21 was deactivated on this device/);
    fs.rmSync(path.join(dir, 'license.lic.deactivated'));
    await refused(['activate', original], /was deactivated on this device/);
    await refused(
      ['activate', write('refresh-5.lic', licenseFor(request, { counter: 5 }))],
      /was deactivated on this device/,
    );

    okInProcess(await cli('request'));
    const next = readActivationRequestPayload(
      verifyDeviceSigned(fs.readFileSync(path.join(work, 'activation-request.req'), 'utf8'), 'activation-request')
        .payload,
    );
    assert.match(
      okInProcess(await cli('activate', write('new.lic', licenseFor(next, { activationId: 22 })))).stdout,
      /activation 22/,
    );
  });

  it('a device set up before counters.json: the license files it holds are its history', async () => {
    okInProcess(await cli('activate', write('original.lic', licenseFor(request))));
    // As an older CLI left it: a refreshed license installed, no counters.json.
    fs.rmSync(path.join(dir, 'counters.json'));
    fs.writeFileSync(path.join(dir, 'license.lic'), licenseFor(request, { counter: 3 }));
    await refused(['activate', 'original.lic'], /the device has had 3/);
    // And a given-back license closes its activation.
    fs.renameSync(path.join(dir, 'license.lic'), path.join(dir, 'license.lic.deactivated'));
    fs.rmSync(path.join(dir, 'counters.json'), { force: true });
    await refused(['activate', 'original.lic'], /was deactivated on this device/);
  });
});
