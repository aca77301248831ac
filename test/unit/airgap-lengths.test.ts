import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  AIRGAP_BITS,
  AIRGAP_CODE_LENGTHS,
  AIRGAP_LEGACY_BITS,
  CODE_KINDS,
  airgapActivationMessage,
  codeLayout,
  confirmationCode,
  createAirgapRequest,
  createDeactivationCode,
  encodeActivationCode,
  type CodeKind,
} from '../../sdk/src/index.ts';

/**
 * The lengths promised for what a person types: a request or deactivation code of at most 48
 * characters as typed (hyphens included), an activation code of at most 140 symbols (it is mostly
 * scanned or pasted). Prints the table, version 1 for reference.
 */

const LIMITS = { request: { typed: 48 }, activation: { symbols: 140 }, deactivation: { typed: 48 } } as const;

/** Symbols and typed characters (with the hyphen between groups of 5) of a code of `bits` bits. */
function lengthsOf(bits: number): { symbols: number; typed: number } {
  const layout = codeLayout(bits);
  return { symbols: layout.symbols, typed: layout.symbols + layout.groups - 1 };
}

describe('air-gap code lengths', () => {
  it('prints every kind and keeps within the limits', () => {
    const rows = [
      ...CODE_KINDS.map((kind) => ({ kind, version: 2, bits: AIRGAP_BITS[kind] })),
      ...(Object.entries(AIRGAP_LEGACY_BITS) as Array<[CodeKind, number]>).map(([kind, bits]) => ({
        kind,
        version: 1,
        bits,
      })),
    ];
    console.log('      kind          version  bits  symbols  typed (with hyphens)');
    for (const { kind, version, bits } of rows) {
      const { symbols, typed } = lengthsOf(bits);
      console.log(
        `      ${kind.padEnd(14)}${String(version).padStart(7)}${String(bits).padStart(6)}${String(symbols).padStart(9)}${String(typed).padStart(8)}`,
      );
    }

    const v2 = Object.fromEntries(CODE_KINDS.map((kind) => [kind, lengthsOf(AIRGAP_BITS[kind])])) as Record<
      CodeKind,
      { symbols: number; typed: number }
    >;
    assert.ok(v2.request.typed <= LIMITS.request.typed, `request: ${v2.request.typed} typed characters`);
    assert.ok(v2.activation.symbols <= LIMITS.activation.symbols, `activation: ${v2.activation.symbols} symbols`);
    assert.ok(
      v2.deactivation.typed <= LIMITS.deactivation.typed,
      `deactivation: ${v2.deactivation.typed} typed characters`,
    );
    for (const kind of CODE_KINDS) assert.equal(AIRGAP_CODE_LENGTHS[kind], v2[kind].symbols);
  });

  it('codes as made have exactly those lengths', () => {
    const {
      code: request,
      request: fields,
      secret,
    } = createAirgapRequest({ product: 'ACME-CAD', hardwareId: 'hw-lengths' });
    const key = crypto.generateKeyPairSync('ed25519').privateKey;
    const grant = { expiresDay: 0xffff, features: 0xff };
    const signature = crypto.sign(
      null,
      airgapActivationMessage({
        ...grant,
        productCode: 'ACME-CAD',
        hardwareHash: fields.hardwareHash,
        commitment: fields.commitment,
        licenseKey: 'K-1',
      }),
      key,
    );
    const made: Record<CodeKind, string> = {
      request,
      activation: encodeActivationCode({ ...grant, signature }),
      deactivation: createDeactivationCode({ hardwareHash: fields.hardwareHash, secret }).code,
      confirmation: confirmationCode({ secret, hardwareHash: fields.hardwareHash }),
    };
    for (const kind of CODE_KINDS) {
      assert.deepEqual(
        { symbols: made[kind].replace(/-/g, '').length, typed: made[kind].length },
        lengthsOf(AIRGAP_BITS[kind]),
        kind,
      );
    }
    assert.equal(made.request.length, 47);
    assert.equal(made.activation.replace(/-/g, '').length, 135);
    assert.equal(made.deactivation.length, 38);
  });
});
