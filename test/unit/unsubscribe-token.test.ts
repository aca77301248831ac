import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { SecretBox } from '../../app/crypto/secret-box.ts';
import { readUnsubscribeToken, unsubscribeHeaders, unsubscribeToken } from '../../app/services/unsubscribe.ts';

describe('one-click unsubscribe tokens', () => {
  const box = new SecretBox(() => crypto.randomBytes(32));
  const other = new SecretBox(() => crypto.randomBytes(32));

  it('reads back the address (lower-cased) and kind it was made for', () => {
    const token = unsubscribeToken(box, 'Ann@Example.COM', 'license_expiring');
    assert.deepEqual(readUnsubscribeToken(box, token), { email: 'ann@example.com', kind: 'license_expiring' });
  });

  it('refuses a token for another address, another kind, another installation or a damaged one', () => {
    const token = unsubscribeToken(box, 'ann@example.com', 'license_expiring');
    const [, kind, tag] = token.split('.');
    const forged = `${Buffer.from('bob@example.com').toString('base64url')}.${kind}.${tag}`;
    assert.equal(readUnsubscribeToken(box, forged), null);
    assert.equal(readUnsubscribeToken(box, token.replace('license_expiring', 'staff_digest')), null);
    assert.equal(readUnsubscribeToken(box, token.replace('license_expiring', 'no_such_kind')), null);
    assert.equal(readUnsubscribeToken(other, token), null);
    assert.equal(readUnsubscribeToken(box, `${token}x`), null);
    assert.equal(readUnsubscribeToken(box, `${token}.x`), null);
    assert.equal(readUnsubscribeToken(box, ''), null);
    assert.equal(readUnsubscribeToken(box, 'x'.repeat(5000)), null);
  });

  it('gives the RFC 8058 headers', () => {
    assert.deepEqual(unsubscribeHeaders('https://p.example/unsubscribe/t'), {
      'List-Unsubscribe': '<https://p.example/unsubscribe/t>',
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    });
  });
});
