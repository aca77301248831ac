import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, ConfigError } from '../../config/index.ts';

describe('config', () => {
  it('works with nothing set: SQLite under data/, port 3000', () => {
    const c = loadConfig({});
    assert.equal(c.port, 3000);
    assert.equal(c.dataDir, path.resolve('data'));
    assert.equal(c.databaseUrl, `sqlite:${path.resolve('data', 'portico.sqlite')}`);
    assert.equal(c.baseUrl, 'http://localhost:3000');
    assert.equal(c.cookieSecure, false);
    assert.equal(c.smtpUrl, undefined);
  });

  it('switches to MySQL with DATABASE_URL and to Secure cookies with an https BASE_URL', () => {
    const c = loadConfig({ DATABASE_URL: 'mysql://u:p@db:3306/portico', BASE_URL: 'https://licenses.example.com/' });
    assert.equal(c.databaseUrl, 'mysql://u:p@db:3306/portico');
    assert.equal(c.baseUrl, 'https://licenses.example.com');
    assert.equal(c.cookieSecure, true);
  });

  for (const [name, value, message] of [
    ['PORT', 'abc', /^Invalid configuration: PORT must be a whole number \(got "abc"\)$/],
    ['PORT', '70000', /^Invalid configuration: PORT must be between 0 and 65535/],
    ['DATABASE_URL', 'postgres://x', /^Invalid configuration: DATABASE_URL must start with sqlite: or mysql:\/\//],
    ['SESSION_SECRET', 'short', /^Invalid configuration: SESSION_SECRET must be at least 32 characters/],
    ['COOKIE_SECURE', 'maybe', /^Invalid configuration: COOKIE_SECURE must be true or false/],
    ['DEFAULT_LANGUAGE', 'it', /^Invalid configuration: DEFAULT_LANGUAGE must be one of en, de, fr, es/],
    ['SMTP_URL', 'http://mail', /^Invalid configuration: SMTP_URL must start with smtp:\/\//],
    ['WORKERS', 'two', /^Invalid configuration: WORKERS must be a whole number \(got "two"\)$/],
    ['WORKERS', '0', /^Invalid configuration: WORKERS must be between 1 and 256 \(got "0"\)$/],
    ['WORKERS', '1.5', /^Invalid configuration: WORKERS must be a whole number/],
    ['QUEUE_RUNNER', 'maybe', /^Invalid configuration: QUEUE_RUNNER must be on or off \(got "maybe"\)$/],
  ] as const) {
    it(`rejects ${name}=${value} with one line naming it`, () => {
      assert.throws(
        () => loadConfig({ [name]: value }),
        (err: Error) => err instanceof ConfigError && message.test(err.message) && !err.message.includes('\n'),
      );
    });
  }

  it('runs one worker per available core unless WORKERS says how many (1 allowed)', () => {
    assert.equal(loadConfig({}).workers, os.availableParallelism());
    assert.equal(loadConfig({ WORKERS: '1' }).workers, 1);
    assert.equal(loadConfig({ WORKERS: '3' }).workers, 3);
    assert.equal(loadConfig({ WORKERS: '' }).workers, os.availableParallelism());
  });

  it('runs the job queue in every process unless QUEUE_RUNNER=off', () => {
    assert.equal(loadConfig({}).queueRunner, true);
    assert.equal(loadConfig({ QUEUE_RUNNER: 'on' }).queueRunner, true);
    assert.equal(loadConfig({ QUEUE_RUNNER: 'off' }).queueRunner, false);
  });

  it('reads TRUST_PROXY as a boolean, a hop count or an address list', () => {
    assert.equal(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, true);
    assert.equal(loadConfig({ TRUST_PROXY: '2' }).trustProxy, 2);
    assert.equal(loadConfig({ TRUST_PROXY: 'loopback, 10.0.0.0/8' }).trustProxy, 'loopback, 10.0.0.0/8');
  });
});
