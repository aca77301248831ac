#!/usr/bin/env node
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  createAirgapRequest,
  createDeactivationCode,
  createLegacyDeactivationCode,
  hardwareHash,
  verifyActivationCode,
  verifyConfirmationCode,
  verifyLegacyActivationCode,
  verifyLegacyConfirmationCode,
  type AirgapRequest,
} from './airgap.ts';
import { CodeError, normaliseLicenseKey } from './codes.ts';
import { hardwareId } from './device.ts';
import { EnvelopeError } from './errors.ts';
import { LicenseError } from './license-error.ts';
import {
  applyRefresh,
  checkNotOlder,
  closeActivation,
  licenseMark,
  verifyLicense,
  type LicenseInfo,
  type LicenseMark,
  type VerifyLicenseOptions,
} from './license.ts';
import { ApiCallError, PorticoClient } from './online.ts';
import { HARDWARE_ID_PATTERN, PAYLOAD_LIMITS, type UsageEntry } from './payloads.ts';
import { createActivationRequest, createDeactivationRequest, verifyDeactivationReceipt } from './requests.ts';
import { createUsageReport, nextUsageEntry, type UsageEntryInput } from './usage.ts';
import {
  DeviceState,
  STATE_FILES,
  StateError,
  isLegacyAirgapActivation,
  type AirgapDeactivationState,
  type AirgapPendingRequest,
  type AirgapState,
  type DeviceConfig,
  type InstalledAirgapActivation,
} from './state.ts';

/**
 * portico-device: the reference client. One entry per command in COMMANDS (its options, its
 * positional arguments, its help and what it does): adding a command is adding an entry.
 */

const PROGRAM = 'portico-device';
const DEFAULT_DIR = './.portico-device';
const MAX_INPUT_BYTES = 1024 * 1024;

export const EXIT = { ok: 0, failure: 1, usage: 2, noLicense: 3 } as const;

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  cwd: string;
  env: NodeJS.ProcessEnv;
  now: () => Date;
}

type OptionSpecs = NonNullable<ParseArgsConfig['options']>;
type OptionValues = Record<string, string | boolean | Array<string | boolean> | undefined>;

interface CommandContext {
  state: DeviceState;
  values: OptionValues;
  args: string[];
  io: CliIo;
  now: Date;
  say: (line?: string) => void;
}

interface Command {
  summary: string;
  usage: string;
  /** Lines after the usage line in `help <command>`. */
  details?: string[];
  options?: OptionSpecs;
  args?: { min: number; max: number };
  run: (ctx: CommandContext) => number | undefined | Promise<number | undefined>;
}

/** A mistake on the command line: exit code 2, with the command's usage. */
class UsageError extends Error {}
/** An expected failure: exit code 1, the message only. */
class CliError extends Error {}

/** config.json as `activate --online` leaves it: the server's base URL is remembered for check and deactivate. */
type OnlineConfig = DeviceConfig & { server?: string };

const PASSWORD_ENV = 'PORTICO_DEVICE_PASSWORD';

// ---------------------------------------------------------------------------------------------
// Commands

const COMMANDS: Record<string, Command> = {
  init: {
    summary: 'Set up the state folder: device key, trusted server keys, product and license',
    usage:
      'init --product <code> [--key <license key> | --user <email>] --keys <portico-keys.json> [--hardware-id <id>] [--hostname <name>] [--force]',
    details: [
      "--keys is the server's /.well-known/portico-keys.json, saved to a file.",
      'Without --hardware-id the id is derived from this machine (and checked again at every use).',
      'A user-based license names the user only: the portal asks for the password, never the file.',
      'Without --key and --user the folder is set up to redeem a code ("redeem", "request --voucher", or "airgap-request" then "airgap-activate --key"); the key of the license it becomes is remembered.',
      '--force sets up again while a license is installed (e.g. to take a new key document); the license stays.',
    ],
    options: {
      product: { type: 'string' },
      key: { type: 'string' },
      user: { type: 'string' },
      keys: { type: 'string' },
      'hardware-id': { type: 'string' },
      hostname: { type: 'string' },
      force: { type: 'boolean' },
    },
    run({ state, values, io, now, say }) {
      const product = requiredOption(values, 'product');
      const keysFile = requiredOption(values, 'keys');
      const licenseKey = stringOption(values, 'key') ?? null;
      const user = stringOption(values, 'user') ?? null;
      if (licenseKey !== null && user !== null)
        throw new UsageError('give at most one of --key <license key> and --user <email>');
      const givenId = stringOption(values, 'hardware-id');
      if (givenId !== undefined && !HARDWARE_ID_PATTERN.test(givenId)) {
        throw new UsageError('--hardware-id must be 1–128 characters of A–Z a–z 0–9 . _ : -');
      }
      const config: DeviceConfig = {
        product,
        licenseKey,
        user,
        hardwareId: givenId ?? hardwareId(),
        hardwareIdSource: givenId === undefined ? 'auto' : 'given',
        hostname: stringOption(values, 'hostname') ?? (os.hostname() || null),
      };
      if (state.exists(STATE_FILES.license) && values.force !== true) {
        throw new CliError(
          `a license is installed in ${state.dir}: deactivate it first, or pass --force to set up again and keep it`,
        );
      }
      // init --force keeps the license, so it keeps the server that license was activated with.
      const server = state.exists(STATE_FILES.license) ? rememberedServer(state) : undefined;
      if (server !== undefined) (config as OnlineConfig).server = server;
      const keysText = readInputFile(io, keysFile, 'the key file');
      const deviceKey = state.deviceKey();
      // A request made now must be valid, so every value is checked by the rules the portal applies.
      createActivationRequest({
        ...config,
        deviceKey,
        os: osDescription(),
        now,
        // Set up to redeem a code: a placeholder stands in for it, only the other values are checked here.
        voucher: licenseKey === null && user === null ? 'XXXXX-XXXXX-XXXXX-XXXXX' : null,
      });
      let kids: string[];
      try {
        kids = [...state.writeTrustedKeys(keysText).keys()];
      } catch (err) {
        if (err instanceof LicenseError)
          throw new CliError(`${keysFile} is not a usable Portico key document: ${err.message}`);
        throw err;
      }
      state.writeConfig(config);
      say(`Set up ${state.dir}`);
      say(`  product:       ${product}`);
      if (licenseKey !== null) say(`  license key:   ${licenseKey}`);
      else if (user !== null) say(`  user:          ${user}`);
      else say('  license:       none yet (redeem a code)');
      say(`  hardware id:   ${config.hardwareId}${config.hardwareIdSource === 'auto' ? ' (this machine)' : ''}`);
      say(`  device key:    ${deviceKey.publicKeyString}`);
      say(`  trusted keys:  ${kids.join(', ')}`);
      say(`Next: ${PROGRAM} request`);
    },
  },

  request: {
    summary: 'Write an activation request to upload to the Offline Activation Portal',
    usage: 'request [--out <file>] [--app-version <version>] [--voucher <code>]',
    details: [
      'Default file: activation-request.req in the current directory ("-" writes to standard output).',
      '--voucher puts a redeemable code in the request (a folder set up without --key): the portal redeems it and answers with the license file.',
    ],
    options: { out: { type: 'string' }, 'app-version': { type: 'string' }, voucher: { type: 'string' } },
    run({ state, values, io, now, say }) {
      const config = state.config();
      const voucher = stringOption(values, 'voucher') ?? null;
      if (voucher !== null && config.licenseKey !== null)
        throw new UsageError('--voucher is for a folder set up without --key (the code becomes the license)');
      const request = createActivationRequest({
        product: config.product,
        licenseKey: config.licenseKey,
        user: config.user,
        voucher,
        hardwareId: currentHardwareId(config),
        deviceKey: state.deviceKey(),
        hostname: config.hostname,
        os: osDescription(),
        appVersion: stringOption(values, 'app-version') ?? null,
        now,
      });
      const out = writeOutputFile(io, stringOption(values, 'out') ?? 'activation-request.req', request.text);
      const pending = state.pending();
      state.writePending({ ...pending, activation: { nonce: request.nonce, createdAt: request.payload.createdAt } });
      if (out === undefined) return;
      say(`Activation request written to ${out}`);
      say('Upload it to the Offline Activation Portal and download the license file it gives back.');
      if (config.user !== null) say(`The portal will ask for the password of ${config.user}.`);
      if (state.exists(STATE_FILES.license))
        say('Note: a license is installed already; activating the answer to this request replaces it.');
      say(`Next: ${PROGRAM} activate <license file>`);
    },
  },

  activate: {
    summary: 'Install the license file the portal gave for the last activation request, or activate online',
    usage:
      'activate <license file> | activate --online --server <base URL> [--password <password>] [--app-version <version>]',
    details: [
      '--online sends a new activation request to the License API of the server at --server and installs the license it answers with.',
      'The server URL is remembered for "check" and "deactivate --online".',
      `No file older than one this machine has installed for the same activation is installed (${STATE_FILES.counters}), whichever command brings it.`,
      `A user-based license needs the license user's password: --password, or $${PASSWORD_ENV} (kept out of the process list); it is never stored.`,
    ],
    options: {
      online: { type: 'boolean' },
      server: { type: 'string' },
      password: { type: 'string' },
      'app-version': { type: 'string' },
    },
    args: { min: 0, max: 1 },
    async run({ state, values, args, io, now, say }) {
      const online = values.online === true;
      if (!online) {
        for (const name of ['server', 'password', 'app-version'])
          if (values[name] !== undefined) throw new UsageError(`--${name} goes with --online`);
        if (args.length === 0) throw new UsageError('missing argument: the license file (or --online)');
      } else if (args.length > 0) {
        throw new UsageError(`activate --online takes no file (got "${args[0]}")`);
      }
      if (online) {
        const config = state.config();
        const server = serverUrl(requiredOption(values, 'server'));
        const password = stringOption(values, 'password') ?? (io.env[PASSWORD_ENV] || undefined);
        if (config.user === null && stringOption(values, 'password') !== undefined)
          throw new UsageError('--password is for user-based licenses only: this folder is set up with a license key');
        if (config.user !== null && password === undefined)
          throw new UsageError(
            `the license of ${config.user} needs that user's password: --password <password> (or $${PASSWORD_ENV})`,
          );
        const license = await activateOnline({ state, values, io, now }, config, server, password, null);
        installLicense(state, license, license.text, now);
        const remembered: OnlineConfig = { ...config, server };
        state.writeConfig(remembered);
        say(
          `License activated online (${server})${license.repeated ? ': the server had activated this request already' : ''}.`,
        );
        printLicense(say, license);
        say(`Next: ${PROGRAM} check   (renews the lease before it ends)`);
        return;
      }
      const { nonce } = state.pending().activation ?? {};
      if (nonce === undefined)
        throw new CliError(`no activation request was made from ${state.dir}: run "${PROGRAM} request" first`);
      const text = readInputFile(io, args[0], 'the license file');
      const license = verifyLicense(text, { ...verifyOptions(state, now), requestNonce: nonce });
      installLicense(state, license, text, now);
      rememberRedeemedKey(state, license);
      say('License activated.');
      printLicense(say, license);
    },
  },

  redeem: {
    summary: 'Redeem a license code online: the server makes it a license and activates it on this machine',
    usage: 'redeem <code> --server <base URL> [--password <password>] [--app-version <version>]',
    details: [
      'For a folder set up without --key (init --product … --keys …). The code is sent inside a signed activation request to the License API;',
      'the license it becomes is installed, and its key remembered for later commands. A code redeems once.',
      `A code for a user-based product needs the folder's user (init --user) and that user's password: --password, or $${PASSWORD_ENV}.`,
      'Offline instead: "request --voucher <code>", upload the file, then "activate <license file>".',
    ],
    options: { server: { type: 'string' }, password: { type: 'string' }, 'app-version': { type: 'string' } },
    args: { min: 1, max: 1 },
    async run({ state, values, args, io, now, say }) {
      const config = state.config();
      if (config.licenseKey !== null)
        throw new UsageError(
          'this folder is set up with a license key: a code is redeemed in a folder set up without --key',
        );
      const server = serverUrl(requiredOption(values, 'server'));
      const password = stringOption(values, 'password') ?? (io.env[PASSWORD_ENV] || undefined);
      if (config.user !== null && password === undefined)
        throw new UsageError(
          `redeeming for ${config.user} needs that user's password: --password <password> (or $${PASSWORD_ENV})`,
        );
      const license = await activateOnline({ state, values, io, now }, config, server, password, args[0]!);
      installLicense(state, license, license.text, now);
      const remembered: OnlineConfig = { ...config, licenseKey: license.licenseKey ?? null, server };
      state.writeConfig(remembered);
      say(`Code redeemed and license activated online (${server}).`);
      printLicense(say, license);
      say(`Next: ${PROGRAM} check   (renews the lease before it ends)`);
    },
  },

  status: {
    summary: `Show whether a valid license is installed (exit code 0 if so, ${EXIT.noLicense} if not)`,
    usage: 'status',
    run({ state, now, say }) {
      // An air-gap activation (airgap-activate) licenses the machine as well as a license file does.
      let airgap: boolean | undefined;
      try {
        airgap = airgapStatus(state, now, say);
        const text = state.readText(STATE_FILES.license);
        if (text === undefined) {
          if (airgap === undefined) say('No license installed.');
          if (state.pending().deactivation) say(`A deactivation is waiting for its receipt: ${PROGRAM} receipt <file>`);
          const closing = state.airgap().deactivation;
          if (closing)
            say(
              `An air-gap deactivation (${airgapName(closing)}) is waiting for its confirmation code: ${PROGRAM} airgap-confirm <code>`,
            );
          return airgap ? EXIT.ok : EXIT.noLicense;
        }
        const license = verifyLicense(text, verifyOptions(state, now));
        say('License valid.');
        printLicense(say, license);
        return EXIT.ok;
      } catch (err) {
        if (err instanceof StateError) {
          say(`No license: ${err.message}`);
          return EXIT.noLicense;
        }
        if (err instanceof LicenseError) {
          say(`The installed license is not valid (${err.code}): ${err.message}`);
          return airgap ? EXIT.ok : EXIT.noLicense;
        }
        throw err;
      }
    },
  },

  deactivate: {
    summary: 'Write a deactivation request and remove the license from this machine (or deactivate online)',
    usage:
      'deactivate [--out <file>] [--usage <feature>=<amount> ...] | deactivate --online [--server <base URL>] [--usage <feature>=<amount> ...]',
    details: [
      'Default file: deactivation-request.req in the current directory ("-" writes to standard output).',
      '--usage may be repeated (or take a comma-separated list) to report consumption per feature.',
      `The license is kept as ${STATE_FILES.deactivatedLicense} until the portal's receipt is checked.`,
      '--online sends the request to the License API instead (default server: the one "activate --online" used), checks',
      'the receipt it answers with and then removes the license; if the call fails, the license stays installed.',
    ],
    options: {
      out: { type: 'string' },
      usage: { type: 'string', multiple: true },
      online: { type: 'boolean' },
      server: { type: 'string' },
    },
    async run({ state, values, io, now, say }) {
      const usage = parseUsage(values.usage);
      const online = values.online === true;
      if (online && values.out !== undefined)
        throw new UsageError('--out is for the offline request file, not with --online');
      if (!online && values.server !== undefined) throw new UsageError('--server goes with --online');
      const text = state.readText(STATE_FILES.license);
      if (text === undefined) throw new CliError('no license is installed');
      // An expired license can still be given back: its seat is what the deactivation frees.
      const license = verifyLicense(text, { ...verifyOptions(state, now), checkDates: false });
      if (online) {
        const client = new PorticoClient({
          baseUrl: serverFor(state, values),
          trustedKeys: state.trustedKeys(),
          now: io.now,
        });
        const receipt = await client.deactivate(license, state.deviceKey(), usage);
        state.writeLicenseHistory(closeActivation(licenseHistory(state, now), license, text));
        state.remove(STATE_FILES.license);
        say(
          `Deactivation confirmed by ${client.baseUrl}: license ${receipt.licenseId}, activation ${receipt.activationId} released at ${receipt.deactivatedAt}.`,
        );
        say('The license is removed from this machine.');
        return;
      }
      const request = createDeactivationRequest({ license, deviceKey: state.deviceKey(), usage, now });
      const out = writeOutputFile(io, stringOption(values, 'out') ?? 'deactivation-request.req', request.text);
      const { licenseId, activationId, hardwareId: hw } = license;
      state.writePending({
        ...state.pending(),
        deactivation: {
          nonce: request.nonce,
          createdAt: request.payload.createdAt,
          licenseId,
          activationId,
          hardwareId: hw,
        },
      });
      state.writeLicenseHistory(closeActivation(licenseHistory(state, now), license, text));
      state.move(STATE_FILES.license, STATE_FILES.deactivatedLicense);
      if (out === undefined) return;
      say(`Deactivation request written to ${out}`);
      say(
        'The license is removed from this machine. Upload the request to the Offline Activation Portal to free its seat.',
      );
      say(`Next: ${PROGRAM} receipt <receipt file>`);
    },
  },

  usage: {
    summary: 'Record usage in the local usage log, or write a signed usage report of it for the portal',
    usage:
      'usage record [--consume <feature>=<amount> ...] [--feature <feature>[=<uses>] ...] [--seats <peak>] | usage report [--out <file>] [--from <entry>]',
    details: [
      'record appends entries to the usage log (usage-log.json): --consume for consumption features, --feature for',
      'features used (once unless =<uses> is given), --seats for the peak number of seats in use. Each option may be repeated.',
      'Entries are numbered 1, 2, 3 … and each is chained to the one before by its hash; they are never changed.',
      `report writes the entries since the last report (at most ${PAYLOAD_LIMITS.reportEntries}), signed with the device key, to`,
      'usage-report.usage ("-" writes to standard output). Upload it on the Offline Activation Portal. If the license',
      `was renewed or changed, the portal answers with a renewed license: install it with "${PROGRAM} refresh <file>".`,
      '--from <entry> makes the report start at that entry again (when the portal says which entry it expects next).',
    ],
    options: {
      consume: { type: 'string', multiple: true },
      feature: { type: 'string', multiple: true },
      seats: { type: 'string' },
      out: { type: 'string' },
      from: { type: 'string' },
    },
    args: { min: 1, max: 1 },
    run({ state, values, args, io, now, say }) {
      const text = state.readText(STATE_FILES.license);
      if (text === undefined) throw new CliError('no license is installed: usage is recorded for an installed license');
      const license = verifyLicense(text, { ...verifyOptions(state, now), checkDates: false });
      const log = state.usageLog();
      if (args[0] === 'record') {
        if (values.out !== undefined || values.from !== undefined)
          throw new UsageError('--out and --from go with "usage report"');
        const inputs = usageInputs(values, license);
        if (!inputs.length) throw new UsageError('usage record needs --consume, --feature or --seats');
        for (const input of inputs) log.entries.push(nextUsageEntry(log.entries.at(-1), input, now));
        state.writeUsageLog(log);
        say(
          `Recorded ${inputs.length} usage ${inputs.length === 1 ? 'entry' : 'entries'} (up to entry ${log.entries.at(-1)!.counter}).`,
        );
        return;
      }
      if (args[0] !== 'report') throw new UsageError(`"usage ${args[0]}" is not a usage command: record or report`);
      if (values.consume !== undefined || values.feature !== undefined || values.seats !== undefined)
        throw new UsageError('--consume, --feature and --seats go with "usage record"');
      const fromText = stringOption(values, 'from');
      if (fromText !== undefined && !/^[1-9]\d{0,9}$/.test(fromText))
        throw new UsageError('--from takes an entry number (1, 2, 3 …)');
      const from = fromText === undefined ? log.reportedThrough + 1 : Number(fromText);
      const entries = log.entries.filter((e) => e.counter >= from).slice(0, PAYLOAD_LIMITS.reportEntries);
      if (!entries.length)
        throw new CliError(
          `nothing to report: the usage log has no entry from ${from} on (${log.entries.length} entries, reported up to ${log.reportedThrough})`,
        );
      const report = createUsageReport({ license, deviceKey: state.deviceKey(), entries, now });
      const out = writeOutputFile(io, stringOption(values, 'out') ?? 'usage-report.usage', report.text);
      const last = entries.at(-1)!.counter;
      state.writeUsageLog({ ...log, reportedThrough: Math.max(log.reportedThrough, last) });
      if (out === undefined) return;
      say(`Usage report written to ${out} (entries ${entries[0]!.counter} to ${last}).`);
      if (log.entries.at(-1)!.counter > last)
        say(`More entries wait: run "${PROGRAM} usage report" again after this one.`);
      say('Upload it on the Offline Activation Portal. If a renewed license comes back, install it:');
      say(`  ${PROGRAM} refresh <renewed license file>`);
    },
  },

  receipt: {
    summary: "Check the portal's receipt for the last deactivation request",
    usage: 'receipt <receipt file>',
    args: { min: 1, max: 1 },
    run({ state, args, io, say }) {
      const pending = state.pending();
      if (!pending.deactivation) throw new CliError(`no deactivation request is waiting for a receipt in ${state.dir}`);
      const text = readInputFile(io, args[0], 'the receipt');
      const receipt = verifyDeactivationReceipt(text, {
        trustedKeys: state.trustedKeys(),
        license: pending.deactivation,
        nonce: pending.deactivation.nonce,
      });
      state.remove(STATE_FILES.deactivatedLicense);
      state.writePending({ ...pending, deactivation: undefined });
      say(
        `Deactivation confirmed: license ${receipt.licenseId}, activation ${receipt.activationId} released at ${receipt.deactivatedAt}.`,
      );
    },
  },

  refresh: {
    summary: 'Install a refresh file: a new lease and entitlements for the same activation',
    usage: 'refresh <refresh file>',
    details: [
      'The file must be newer (a greater counter) than the installed license and than any this machine has installed for that activation.',
    ],
    args: { min: 1, max: 1 },
    run({ state, args, io, now, say }) {
      const current = state.readText(STATE_FILES.license);
      if (current === undefined)
        throw new CliError(`no license is installed: a refresh file renews an installed license`);
      const options = verifyOptions(state, now);
      // The installed license may have expired or run out of lease: that is what refresh files are for.
      const installed = verifyLicense(current, { ...options, checkDates: false });
      const text = readInputFile(io, args[0], 'the refresh file');
      const license = applyRefresh(installed, text, options);
      installLicense(state, license, text, now);
      say(`License refreshed (file ${license.counter}).`);
      printLicense(say, license);
    },
  },

  check: {
    summary: 'Check the installed license online: the server renews its lease and entitlements',
    usage: 'check [--server <base URL>]',
    details: [
      'Proves with the device key that this machine still holds the activation; the answer is a refresh file, installed like "refresh" does.',
      'Default server: the one "activate --online" used. A license whose lease has ended can be checked (that renews it).',
    ],
    options: { server: { type: 'string' } },
    async run({ state, values, io, now, say }) {
      const text = state.readText(STATE_FILES.license);
      if (text === undefined)
        throw new CliError(`no license is installed: run "${PROGRAM} activate --online --server <base URL>" first`);
      const installed = verifyLicense(text, { ...verifyOptions(state, now), checkDates: false });
      const client = new PorticoClient({
        baseUrl: serverFor(state, values),
        trustedKeys: state.trustedKeys(),
        now: io.now,
      });
      const license = await client.check(installed, state.deviceKey());
      installLicense(state, license, license.text, now);
      say(`License valid (checked with ${client.baseUrl}, file ${license.counter}).`);
      say(`  ${'lease ends:'.padEnd(14)} ${license.leaseEndsAt}`);
      if (license.expiresAt !== null) say(`  ${'expires:'.padEnd(14)} ${license.expiresAt}`);
      if (license.floatingExpiresAt !== null)
        say(`  ${'floating slot:'.padEnd(14)} held until ${license.floatingExpiresAt} (check again before)`);
    },
  },

  'airgap-request': {
    summary: 'Show a request code to type (or scan) into the Air-Gapped Activation Portal',
    usage: 'airgap-request [--portal <base URL>]',
    details: [
      'For machines no file may leave: the code is 40 characters (47 with hyphens), with check symbols that catch typos.',
      '--portal <base URL> also prints the portal address with the code filled in (for a QR code).',
      'Air-gapped activation uses the license key given to "init --key"; in a folder set up without --key and --user, type a redeemable code in the portal instead: it shows the new license key with the activation code.',
      'While an air-gap activation is installed the portal will not activate this machine again: give it back first (airgap-deactivate). --force makes a request anyway (after a manager reset the device); the installed activation and its secret are then discarded.',
      `Every request code commits to a new secret kept in ${STATE_FILES.airgap}; only this machine can later give the activation back.`,
    ],
    options: { portal: { type: 'string' }, force: { type: 'boolean' } },
    run({ state, values, now, say }) {
      const config = state.config();
      if (config.licenseKey === null && config.user !== null)
        throw new CliError(
          'air-gapped activation needs a license key: run "init --key <license key>" (or set up without --user to redeem a code in the portal)',
        );
      const portal = portalUrl(stringOption(values, 'portal'));
      const airgap = state.airgap();
      if (airgap.activation && values.force !== true) {
        throw new CliError(
          `an air-gap activation is installed in ${state.dir}: the portal activates a machine once; give it back first (${PROGRAM} airgap-deactivate), or pass --force after a manager reset this device`,
        );
      }
      const { code, request, secret } = createAirgapRequest({
        product: config.product,
        hardwareId: currentHardwareId(config),
        now,
      });
      state.writeAirgap({
        ...airgap,
        activation: values.force === true ? undefined : airgap.activation,
        request: { ...request, code, secret, createdAt: now.toISOString() },
      });
      say(`Request code: ${code}`);
      if (portal !== undefined) say(`Portal:       ${portal}/airgap?code=${code}`);
      if (config.licenseKey === null) {
        say(
          'Enter it with your redeemable code in the Air-Gapped Activation Portal; it shows the new license key and an activation code.',
        );
        say(`Next: ${PROGRAM} airgap-activate <activation code> --key <license key>`);
      } else {
        say(
          `Enter it with the license key ${config.licenseKey} in the Air-Gapped Activation Portal; it shows an activation code.`,
        );
        say(`Next: ${PROGRAM} airgap-activate <activation code>`);
      }
    },
  },

  'airgap-activate': {
    summary: 'Install the activation code the Air-Gapped Activation Portal gave for the last request code',
    usage: 'airgap-activate <activation code or file> [--key <license key>]',
    details: [
      'The code may be typed with or without hyphens and spaces, in any case; a file holding it (or the portal URL with ?code=) works too.',
      'A mistyped group is named, so only that group needs typing again.',
      '--key: in a folder set up without a key (a redeemable code was typed in the portal), the license key the portal showed.',
      'The activation code is signed for that key, so it is checked against it; the key is then remembered in the folder.',
    ],
    options: { key: { type: 'string' } },
    args: { min: 1, max: 64 },
    run({ state, args, values, io, now, say }) {
      const given = stringOption(values, 'key');
      const stored = state.config();
      if (
        given !== undefined &&
        (stored.user !== null ||
          (stored.licenseKey !== null && normaliseLicenseKey(given) !== normaliseLicenseKey(stored.licenseKey)))
      )
        throw new UsageError(
          stored.user !== null
            ? '--key is for a folder set up without --key and --user'
            : `this folder is set up with the license key ${stored.licenseKey}: --key is for a folder set up without a key`,
        );
      // Set up to redeem a code: the key the portal showed with the activation code (checked against the code below).
      const config =
        stored.licenseKey === null && given !== undefined
          ? { ...stored, licenseKey: normaliseLicenseKey(given) }
          : stored;
      const airgap = state.airgap();
      if (!airgap.request)
        throw new CliError(`no air-gap request was made from ${state.dir}: run "${PROGRAM} airgap-request" first`);
      if (!isCurrentRequest(airgap.request)) {
        throw new CliError(
          `the last request code was made by an older version of ${PROGRAM} (air-gap codes version 1): run "${PROGRAM} airgap-request" again and enter the new code in the portal`,
        );
      }
      if (config.licenseKey === null)
        throw new CliError(
          'air-gapped activation needs a license key: run "init --key <license key>", or give the key the portal showed for a redeemed code (--key <license key>)',
        );
      const request = airgapRequestOf(airgap.request);
      if (hardwareHash(currentHardwareId(config)) !== request.hardwareHash) {
        throw new CliError(`the last request code was made on another machine: run "${PROGRAM} airgap-request" again`);
      }
      const code = codeArgument(io, args, 'the activation code');
      const verified = verifyActivationCode(code, {
        trustedKeys: state.trustedKeys(),
        request,
        licenseKey: config.licenseKey,
        now,
      });
      const activation: InstalledAirgapActivation = {
        code,
        request,
        licenseKey: config.licenseKey,
        expiresAt: verified.expiresAt?.toISOString() ?? null,
        features: verified.features,
        secret: airgap.request.secret,
        kid: verified.kid,
        activatedAt: now.toISOString(),
      };
      // The request is answered: its secret now belongs to the activation.
      state.writeAirgap({ activation, deactivation: airgap.deactivation });
      // A folder set up to redeem a code takes the key of the license the code became (verified above).
      if (config !== stored) state.writeConfig(config);
      say('Air-gap activation installed.');
      printAirgapActivation(say, config, activation);
    },
  },

  'airgap-deactivate': {
    summary: 'Show a deactivation code for the Air-Gapped Activation Portal and stop using the air-gap activation',
    usage: 'airgap-deactivate',
    details: [
      'The code proves this machine made the request the activation answered (it reveals the secret only this machine kept);',
      'the portal frees the seat and shows a confirmation code. The activation is removed from this machine at once.',
      'Run again before confirming, it shows the same code.',
    ],
    run({ state, now, say }) {
      const airgap = state.airgap();
      let closing = airgap.deactivation;
      if (!closing || airgap.activation) {
        if (!airgap.activation) throw new CliError(`no air-gap activation is installed in ${state.dir}`);
        closing = deactivationOf(airgap.activation, now);
        state.writeAirgap({ ...airgap, activation: undefined, deactivation: closing });
      }
      say(`Deactivation code: ${closing.code}`);
      say(
        `Enter it with the license key ${closing.licenseKey} in the Air-Gapped Activation Portal; it frees the seat and shows a confirmation code.`,
      );
      say(`Next: ${PROGRAM} airgap-confirm <confirmation code>`);
    },
  },

  'airgap-confirm': {
    summary: 'Check the confirmation code the portal showed for the air-gap deactivation',
    usage: 'airgap-confirm <confirmation code>',
    args: { min: 1, max: 16 },
    run({ state, args, io, say }) {
      const airgap = state.airgap();
      const closing = airgap.deactivation;
      if (!closing) throw new CliError(`no air-gap deactivation is waiting for a confirmation in ${state.dir}`);
      const code = codeArgument(io, args, 'the confirmation code');
      const answers = isLegacyAirgapActivation(closing)
        ? verifyLegacyConfirmationCode(code, {
            secret: Buffer.from(closing.secret, 'hex'),
            activationId: closing.activationId,
            nonce: closing.nonce,
          })
        : verifyConfirmationCode(code, { secret: closing.secret, hardwareHash: closing.request.hardwareHash });
      if (!answers) throw new CliError(`this confirmation code does not answer the deactivation code ${closing.code}`);
      state.writeAirgap({ ...airgap, deactivation: undefined });
      say(`Deactivation confirmed: ${airgapName(closing)} released.`);
    },
  },

  help: {
    summary: 'Show help for a command',
    usage: 'help [<command>]',
    args: { min: 0, max: 1 },
    run({ args, say }) {
      say(args.length === 0 ? mainHelp() : commandHelp(commandNamed(args[0])));
    },
  },
};

// ---------------------------------------------------------------------------------------------
// Helpers shared by the commands

/** The server's base URL from --server, else the one `activate --online` remembered. */
/**
 * One online activation of this machine (activate --online, or redeem with a code): the signed
 * request made here, sent to the License API, and the answer checked against what was asked.
 */
async function activateOnline(
  { state, values, io, now }: { state: DeviceState; values: OptionValues; io: CliIo; now: Date },
  config: DeviceConfig,
  server: string,
  password: string | undefined,
  voucher: string | null,
) {
  const deviceKey = state.deviceKey();
  const request = createActivationRequest({
    product: config.product,
    licenseKey: voucher === null ? config.licenseKey : null,
    user: config.user,
    ...(voucher === null ? {} : { voucher }),
    hardwareId: currentHardwareId(config),
    deviceKey,
    hostname: config.hostname,
    os: osDescription(),
    appVersion: stringOption(values, 'app-version') ?? null,
    now,
  });
  const client = new PorticoClient({ baseUrl: server, trustedKeys: state.trustedKeys(), now: io.now });
  const input = {
    request: request.text,
    nonce: request.nonce,
    expected: {
      product: config.product,
      hardwareId: request.payload.hardwareId,
      devicePublicKey: deviceKey.publicKeyString,
    },
    ...(config.user !== null ? { user: { email: config.user, password: password! } } : {}),
  };
  return voucher === null ? client.activate(input) : client.redeem(input);
}

function serverFor(state: DeviceState, values: OptionValues): string {
  const given = stringOption(values, 'server');
  if (given !== undefined) return serverUrl(given);
  const remembered = rememberedServer(state);
  if (remembered === undefined)
    throw new UsageError('--server <base URL> is required: no server was remembered by "activate --online"');
  return remembered;
}

function rememberedServer(state: DeviceState): string | undefined {
  let config: OnlineConfig;
  try {
    config = state.config();
  } catch {
    return undefined;
  }
  if (typeof config.server !== 'string') return undefined;
  try {
    return serverUrl(config.server);
  } catch {
    throw new StateError(
      `${state.path(STATE_FILES.config)} names an unusable server ("${config.server}"): pass --server`,
    );
  }
}

function serverUrl(base: string): string {
  let url: URL;
  try {
    url = new URL(base.trim());
  } catch {
    throw new UsageError(`--server must be the server's base URL (https://…), not "${base}"`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new UsageError('--server must be an http or https URL');
  if (url.username || url.password || url.search || url.hash)
    throw new UsageError('--server must be a plain base URL (no credentials, query or fragment)');
  return url.href.replace(/\/+$/, '');
}

function currentHardwareId(config: DeviceConfig): string {
  return config.hardwareIdSource === 'auto' ? hardwareId() : config.hardwareId;
}

function verifyOptions(state: DeviceState, now: Date): VerifyLicenseOptions {
  const config = state.config();
  return {
    trustedKeys: state.trustedKeys(),
    product: config.product,
    hardwareId: currentHardwareId(config),
    devicePublicKey: state.deviceKey().publicKeyString,
    now,
  };
}

/**
 * Installs a verified license or refresh file: every command that writes the license goes through
 * here, so none installs a file older than one this device has had (checkNotOlder).
 */
/** A folder set up to redeem a code takes the key of the license the code became (for the commands that need a key). */
function rememberRedeemedKey(state: DeviceState, license: LicenseInfo): void {
  const config = state.config();
  if (config.licenseKey === null && config.user === null && license.licenseKey !== null)
    state.writeConfig({ ...config, licenseKey: license.licenseKey });
}

function installLicense(state: DeviceState, license: LicenseInfo, text: string, now: Date): void {
  state.writeLicenseHistory(checkNotOlder(licenseHistory(state, now), license, text));
  state.writeText(STATE_FILES.license, text);
}

/**
 * What this device has installed per activation: counters.json, or, on a device set up before that
 * file existed, what the license files it holds say (a given-back license is a closed activation).
 */
function licenseHistory(state: DeviceState, now: Date): LicenseMark[] {
  const stored = state.licenseHistory();
  if (stored !== undefined) return stored;
  const options: VerifyLicenseOptions = { ...verifyOptions(state, now), checkDates: false };
  const held: Array<[typeof STATE_FILES.license | typeof STATE_FILES.deactivatedLicense, boolean]> = [
    [STATE_FILES.license, false],
    [STATE_FILES.deactivatedLicense, true],
  ];
  return held.flatMap(([file, closed]) => {
    const text = state.readText(file);
    if (text === undefined) return [];
    try {
      return [licenseMark(verifyLicense(text, options), text, closed)];
    } catch (err) {
      // A file that no longer verifies here (damaged, another machine's) says nothing about this device's history.
      if (err instanceof LicenseError) return [];
      throw err;
    }
  });
}

/** Whether an air-gap activation is installed and valid (printing it), undefined when there is none. */
function airgapStatus(state: DeviceState, now: Date, say: (line?: string) => void): boolean | undefined {
  const activation = state.airgap().activation;
  if (!activation) return undefined;
  const config = state.config();
  if (hardwareHash(currentHardwareId(config)) !== activation.request.hardwareHash) {
    say('The air-gap activation is not valid (hardware): it was made for another machine.');
    return false;
  }
  try {
    const options = { trustedKeys: state.trustedKeys(), licenseKey: activation.licenseKey, now };
    if (isLegacyAirgapActivation(activation))
      verifyLegacyActivationCode(activation.code, { ...options, request: activation.request });
    else verifyActivationCode(activation.code, { ...options, request: activation.request });
  } catch (err) {
    if (!(err instanceof CodeError)) throw err;
    say(`The air-gap activation is not valid (${err.code}): ${err.message}`);
    return false;
  }
  say('Air-gap activation valid.');
  printAirgapActivation(say, config, activation);
  return true;
}

function printAirgapActivation(say: (line?: string) => void, config: DeviceConfig, a: InstalledAirgapActivation): void {
  const bits = [...Array(8).keys()].filter((i) => (a.features >> i) & 1);
  const rows: Array<[string, string]> = [
    ['product', a.request.product],
    ['license key', `${a.licenseKey} (${airgapName(a)})`],
    ['expires', a.expiresAt ?? 'never'],
    ['features', bits.length === 0 ? 'none' : `bits ${bits.join(', ')} of the product's feature list`],
    ['hardware id', config.hardwareId],
    ['signed by', a.kid],
  ];
  for (const [name, value] of rows) say(`  ${`${name}:`.padEnd(14)} ${value}`);
}

/** How an air-gap activation is named to the person: version 1 activations have an id, version 2 ones are this machine's. */
function airgapName(a: InstalledAirgapActivation): string {
  return isLegacyAirgapActivation(a) ? `air-gap activation ${a.activationId}` : `air-gap activation of this machine`;
}

function airgapRequestOf(r: AirgapRequest): AirgapRequest {
  return {
    product: r.product,
    productHash: r.productHash,
    hardwareHash: r.hardwareHash,
    commitment: r.commitment,
    hour: r.hour,
  };
}

/** A request stored by this version (with its secret), not by a version 1 CLI. */
function isCurrentRequest(request: NonNullable<AirgapState['request']>): request is AirgapPendingRequest {
  const r = request as Partial<AirgapPendingRequest>;
  return typeof r.secret === 'string' && typeof r.commitment === 'string';
}

/** The deactivation code of an installed activation, in the version it was made with. */
function deactivationOf(activation: InstalledAirgapActivation, now: Date): AirgapDeactivationState {
  const requestedAt = now.toISOString();
  if (isLegacyAirgapActivation(activation)) {
    const { code, nonce } = createLegacyDeactivationCode({
      activationId: activation.activationId,
      secret: Buffer.from(activation.secret, 'hex'),
    });
    return { ...activation, code, nonce, requestedAt };
  }
  const { code } = createDeactivationCode({ hardwareHash: activation.request.hardwareHash, secret: activation.secret });
  return { ...activation, code, requestedAt };
}

/** A typed code from the command line: the code itself (in one or several pieces), or a file holding it or the portal URL. */
function codeArgument(io: CliIo, args: string[], what: string): string {
  const single = args.length === 1 ? path.resolve(io.cwd, args[0]) : undefined;
  const text =
    single !== undefined && fs.statSync(single, { throwIfNoEntry: false })?.isFile()
      ? readInputFile(io, args[0], what)
      : args.join(' ');
  const fromUrl = /[?&]code=([^&#\s]+)/.exec(text);
  if (fromUrl) return decodeURIComponent(fromUrl[1]);
  return text
    .split(/\r?\n/)
    .filter((line) => !line.trim().startsWith('#'))
    .join(' ');
}

function portalUrl(base: string | undefined): string | undefined {
  if (base === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new UsageError(`--portal must be the portal's base URL (https://…), not "${base}"`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new UsageError('--portal must be an http or https URL');
  return url.href.replace(/\/+$/, '');
}

function osDescription(): string {
  return `${os.type()} ${os.release()} ${os.arch()}`.slice(0, 128);
}

function printLicense(say: (line?: string) => void, l: LicenseInfo): void {
  const rows: Array<[string, string]> = [
    ['product', l.product],
    [
      l.licenseKey !== null ? 'license key' : 'user',
      `${l.licenseKey ?? l.user} (license ${l.licenseId}, activation ${l.activationId})`,
    ],
    ['type', `${l.licenseType}${l.trial ? ' (trial)' : ''}`],
    ...(l.startsAt !== null ? [['starts', l.startsAt] as [string, string]] : []),
    ['expires', l.expiresAt ?? 'never'],
    ['lease ends', `${l.leaseEndsAt} (a refresh file renews it)`],
    ...(l.maintenanceUntil !== null ? [['maintenance', `until ${l.maintenanceUntil}`] as [string, string]] : []),
    ...(l.floating !== null
      ? [['floating', `${l.floating.users} users, ${l.floating.timeoutMinutes} min timeout`] as [string, string]]
      : []),
    [
      'features',
      l.features.length === 0
        ? 'none'
        : l.features
            .map((f) => (f.maxConsumption === null ? f.code : `${f.code} (max ${f.maxConsumption})`))
            .join(', '),
    ],
    ['hardware id', l.hardwareId],
  ];
  for (const [name, value] of rows) say(`  ${`${name}:`.padEnd(14)} ${value}`);
}

function parseUsage(values: OptionValues[string]): UsageEntry[] {
  const items = (Array.isArray(values) ? values : [])
    .flatMap((v) => String(v).split(','))
    .map((v) => v.trim())
    .filter(Boolean);
  return items.map((item) => {
    const m = /^([^=\s]+)=(\d{1,15})$/.exec(item);
    if (!m) throw new UsageError(`--usage takes <feature>=<amount> with a whole number, not "${item}"`);
    return { feature: m[1], amount: Number(m[2]) };
  });
}

/** The entries `usage record` appends, from its options, each feature checked against the installed license. */
function usageInputs(values: OptionValues, license: LicenseInfo): UsageEntryInput[] {
  const list = (v: OptionValues[string]) =>
    (Array.isArray(v) ? v : [])
      .flatMap((x) => String(x).split(','))
      .map((x) => x.trim())
      .filter(Boolean);
  const held = new Map(license.features.map((f) => [f.code, f.type]));
  const feature = (code: string, option: string, type?: string) => {
    if (!held.has(code)) throw new UsageError(`--${option}: the license has no feature "${code}"`);
    if (type && held.get(code) !== type) throw new UsageError(`--${option}: "${code}" is not a ${type} feature`);
    return code;
  };
  const out: UsageEntryInput[] = [];
  for (const item of list(values.consume)) {
    const m = /^([^=\s]+)=(\d{1,10})$/.exec(item);
    if (!m) throw new UsageError(`--consume takes <feature>=<amount> with a whole number, not "${item}"`);
    out.push({ kind: 'consumption', feature: feature(m[1]!, 'consume', 'consumption'), amount: Number(m[2]) });
  }
  for (const item of list(values.feature)) {
    const m = /^([^=\s]+)(?:=(\d{1,10}))?$/.exec(item);
    if (!m) throw new UsageError(`--feature takes <feature> or <feature>=<uses>, not "${item}"`);
    out.push({ kind: 'feature', feature: feature(m[1]!, 'feature'), amount: m[2] === undefined ? 1 : Number(m[2]) });
  }
  const seats = stringOption(values, 'seats');
  if (seats !== undefined) {
    if (!/^\d{1,9}$/.test(seats)) throw new UsageError('--seats takes a whole number');
    out.push({ kind: 'seats', feature: null, amount: Number(seats) });
  }
  for (const e of out)
    if (e.amount > PAYLOAD_LIMITS.amount) throw new UsageError(`an amount is at most ${PAYLOAD_LIMITS.amount}`);
  return out;
}

function stringOption(values: OptionValues, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

function requiredOption(values: OptionValues, name: string): string {
  const value = stringOption(values, name)?.trim();
  if (!value) throw new UsageError(`--${name} is required`);
  return value;
}

function readInputFile(io: CliIo, file: string, what: string): string {
  const full = path.resolve(io.cwd, file);
  try {
    if (fs.statSync(full).size > MAX_INPUT_BYTES) throw new CliError(`${file} is too large to be ${what}`);
    return fs.readFileSync(full, 'utf8');
  } catch (err) {
    throw fileError(err, `cannot read ${what} ${file}`);
  }
}

/** Writes `text` to `file` (relative to the working directory), or to standard output for "-". Returns the path written. */
function writeOutputFile(io: CliIo, file: string, text: string): string | undefined {
  if (file === '-') {
    io.stdout(text);
    return undefined;
  }
  const full = path.resolve(io.cwd, file);
  try {
    fs.writeFileSync(full, text);
  } catch (err) {
    throw fileError(err, `cannot write ${file}`);
  }
  const relative = path.relative(io.cwd, full);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : full;
}

function fileError(err: unknown, what: string): Error {
  if (err instanceof CliError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const reasons: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    EISDIR: 'it is a directory',
    ENOTDIR: 'a parent is not a directory',
  };
  if (code !== undefined && code in reasons) return new CliError(`${what}: ${reasons[code]}`);
  return err as Error;
}

// ---------------------------------------------------------------------------------------------
// Help

function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length)) + 2;
  return [
    `Usage: ${PROGRAM} [--dir <folder>] <command> [options]`,
    '',
    'The Portico device client: activates this machine online (License API), with request and license files, or with air-gap codes.',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`),
    '',
    'Global options:',
    `  --dir <folder>  state folder (default: $PORTICO_DEVICE_DIR, else ${DEFAULT_DIR})`,
    '  -h, --help      show help (also after a command)',
    '',
    `Exit codes: ${EXIT.ok} success, ${EXIT.failure} failure, ${EXIT.usage} usage error, ${EXIT.noLicense} no valid license (status).`,
    `Run "${PROGRAM} help <command>" for a command's options.`,
  ].join('\n');
}

function commandHelp(command: Command): string {
  return [
    `Usage: ${PROGRAM} [--dir <folder>] ${command.usage}`,
    '',
    `${command.summary}.`,
    ...(command.details ?? []),
  ].join('\n');
}

function commandNamed(name: string): Command {
  if (!Object.hasOwn(COMMANDS, name)) throw new UsageError(`unknown command "${name}"`);
  return COMMANDS[name];
}

// ---------------------------------------------------------------------------------------------
// Entry point

const GLOBAL_OPTIONS: OptionSpecs = { dir: { type: 'string' }, help: { type: 'boolean', short: 'h' } };

/** Runs one command line (without the program name) and returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let command: Command | undefined;
  try {
    // Global options may come before the command; the command's own options come after it.
    let i = 0;
    while (i < argv.length && argv[i].startsWith('-')) i += argv[i] === '--dir' ? 2 : 1;
    const name = argv[i];
    const { values: globals } = parseCommandLine(argv.slice(0, i), GLOBAL_OPTIONS, 0);
    if (name === undefined) {
      if (globals.help !== true) throw new UsageError('no command given');
      say(io, mainHelp());
      return EXIT.ok;
    }
    command = commandNamed(name);
    const { values, positionals } = parseCommandLine(
      argv.slice(i + 1),
      { ...GLOBAL_OPTIONS, ...command.options },
      command.args?.max ?? 0,
    );
    if (globals.help === true || values.help === true) {
      say(io, commandHelp(command));
      return EXIT.ok;
    }
    if (positionals.length < (command.args?.min ?? 0)) throw new UsageError('missing argument');
    const dir =
      stringOption(values, 'dir') ?? stringOption(globals, 'dir') ?? (io.env.PORTICO_DEVICE_DIR || DEFAULT_DIR);
    const state = new DeviceState(path.resolve(io.cwd, dir));
    const code = await command.run({
      state,
      values,
      args: positionals,
      io,
      now: io.now(),
      say: (line = '') => say(io, line),
    });
    return code ?? EXIT.ok;
  } catch (err) {
    return reportError(io, err, command);
  }
}

function parseCommandLine(
  args: string[],
  options: OptionSpecs,
  maxPositionals: number,
): { values: OptionValues; positionals: string[] } {
  let parsed: { values: OptionValues; positionals: string[] };
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    // parseArgs explains at length; its first sentence is the point.
    throw new UsageError((err as Error).message.split('. ')[0].replace(/\.$/, ''));
  }
  if (parsed.positionals.length > maxPositionals)
    throw new UsageError(`unexpected argument "${parsed.positionals[maxPositionals]}"`);
  return parsed;
}

function say(io: CliIo, line: string): void {
  io.stdout(`${line}\n`);
}

function reportError(io: CliIo, err: unknown, command: Command | undefined): number {
  const fail = (message: string) => io.stderr(`${PROGRAM}: ${message}\n`);
  if (err instanceof UsageError || (err instanceof LicenseError && err.code === 'input')) {
    fail(err.message);
    io.stderr(`Usage: ${PROGRAM} [--dir <folder>] ${command ? command.usage : '<command> [options]'}\n`);
    io.stderr(
      `Run "${PROGRAM} help${command ? ` ${Object.keys(COMMANDS).find((n) => COMMANDS[n] === command)}` : ''}" for more.\n`,
    );
    return EXIT.usage;
  }
  if (err instanceof LicenseError || err instanceof EnvelopeError || err instanceof CodeError) {
    fail(`refused (${err.code}): ${err.message}`);
    return EXIT.failure;
  }
  if (err instanceof CliError || err instanceof StateError) {
    fail(err.message);
    return EXIT.failure;
  }
  if (err instanceof ApiCallError) {
    const wait = err.retryAfterSeconds !== undefined ? ` (try again in ${err.retryAfterSeconds} s)` : '';
    fail(
      err.code === 'network'
        ? `${err.message}${wait}`
        : `the server refused (${err.code}${err.status ? `, HTTP ${err.status}` : ''}): ${err.message}${wait}`,
    );
    return EXIT.failure;
  }
  const fileFailure = fileError(err, 'file error');
  if (fileFailure instanceof CliError) {
    fail(`${fileFailure.message} (${(err as NodeJS.ErrnoException).path ?? ''})`);
    return EXIT.failure;
  }
  fail(`unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return EXIT.failure;
}

function isMain(): boolean {
  if (!process.argv[1]) return false;
  try {
    return fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  process.exitCode = await runCli(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    cwd: process.cwd(),
    env: process.env,
    now: () => new Date(),
  });
}
