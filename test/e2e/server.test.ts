import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import { runScript, waitFor, exitOf, useProcessWorld, startServer } from '../helpers/process.ts';
import { csrfFrom } from '../helpers/app.ts';

describe('server.ts and npm run demo as real processes', function () {
  this.timeout(60_000);
  const world = useProcessWorld('server', { migrate: false });

  it('stops at once with one clear line naming a bad variable', async () => {
    const child = runScript('server.ts', { PORT: 'eighty', DATA_DIR: world.dataDir, DATABASE_URL: world.database.url });
    assert.equal(await exitOf(child), 1);
    const lines = child.output().trim().split('\n');
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^Invalid configuration: PORT must be a whole number \(got "eighty"\)$/);
  });

  it('first start: migrates, makes a 0600 signing key, prints a one-time setup link that works once; stops gracefully', async () => {
    const { child, base: url } = await startServer(world);
    try {
      const [, link] = await waitFor(child, /one-time link[^\n]*\n\s+(http:\/\/\S+)/);
      await request(url).get('/login').expect(200);
      assert.equal(
        Number((await world.database.db('accounts').count({ n: '*' }).first())!.n),
        0,
        'no account before the link is used',
      );
      const keys = fs.readdirSync(path.join(world.dataDir, 'keys'));
      assert.equal(keys.length, 1);
      assert.equal(fs.statSync(path.join(world.dataDir, 'keys', keys[0]!)).mode & 0o777, 0o600);

      const setupPath = new URL(link!).pathname;
      const agent = request.agent(url);
      const page = await agent.get(setupPath).expect(200);
      await agent
        .post(setupPath)
        .type('form')
        .send({
          _csrf: csrfFrom(page.text),
          name: 'First Admin',
          email: 'first@vendor.example',
          language: 'en',
          password: 'a long first password',
          password_confirmation: 'a long first password',
        })
        .expect(303);
      await request(url).get(setupPath).expect(404);
      assert.equal(Number((await world.database.db('accounts').count({ n: '*' }).first())!.n), 1);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exitOf(child), 0, child.output());
  });

  it('a restart after setup prints no setup link and keeps its key', async () => {
    const { child } = await startServer(world);
    try {
      await new Promise((r) => setTimeout(r, 200));
      assert.doesNotMatch(child.output(), /setup/);
      assert.equal(fs.readdirSync(path.join(world.dataDir, 'keys')).length, 1);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exitOf(child), 0);
  });

  it('npm run demo fills the demo vendor and prints logins that work', async () => {
    const child = runScript('db/seeds/demo.ts', { DATA_DIR: world.dataDir, DATABASE_URL: world.database.url });
    assert.equal(await exitOf(child), 0, child.output());
    const [, password] = /reseller@demo\.portico\.test\s+(\S+)/.exec(child.output())!;
    const { child: server, base } = await startServer(world);
    try {
      const agent = request.agent(base);
      const page = await agent.get('/login').expect(200);
      await agent
        .post('/login')
        .type('form')
        .send({ _csrf: csrfFrom(page.text), email: 'reseller@demo.portico.test', password })
        .expect(303);
      const dash = await agent.get('/portal').expect(200);
      assert.match(dash.text, /ORD-1001/);
      assert.match(dash.text, /Globex GmbH/);
      // The dashboard has something to show: seats, renewals due, a device gone quiet, refusals.
      assert.match(dash.text, /ORD-1001: 5 \/ 36 seats in use/);
      for (const [days, n] of [
        [30, 1],
        [60, 2],
        [90, 3],
      ])
        assert.match(dash.text, new RegExp(`ORD-1001: ${n} licenses? expiring within ${days} days`));
      assert.match(dash.text, /ORD-1001: 1 device not seen for 90 days/);
      assert.match(dash.text, /no activations left/);
      assert.match(dash.text, /the machine is blocked for this license/);
      // The sheet of codes the demo printed: one redeems for a new visitor at /redeem.
      const codes = [...child.output().matchAll(/^\s+([0-9A-Z]{5}(?:-[0-9A-Z]{5}){3})$/gm)].map((m) => m[1]!);
      assert.equal(codes.length, 5, child.output());
      const visitor = request.agent(base);
      const redeem = await visitor.get('/redeem').expect(200);
      const redeemed = await visitor
        .post('/redeem')
        .type('form')
        .send({
          _csrf: csrfFrom(redeem.text),
          code: codes[0],
          name: 'Demo Visitor',
          language: 'en',
          email: 'visitor@demo.example',
          password: 'a quite long demo passphrase',
          password_confirmation: 'a quite long demo passphrase',
        });
      assert.equal(redeemed.status, 303, redeemed.text);
    } finally {
      server.kill('SIGTERM');
    }
    assert.equal(await exitOf(server), 0);
    const { database } = world;
    const db = database.db;
    const counts = await db('licenses').count({ n: '*' }).first();
    assert.equal(Number(counts!.n), 19, '18 seeded and the one the redeemed code issued');
    // Everything the demo is meant to show (issue 16): a quota the reseller can issue from,
    // self-service on, live floating slots, an air-gapped activation, a blacklisted machine,
    // licenses expiring within 30/60/90 days, refusals on every side.
    const now = Date.now();
    const n = async (q: ReturnType<typeof db>) => Number((await q.count({ n: '*' }).first())!.n);
    const reseller = db('accounts').where({ email: 'reseller@demo.portico.test' }).select('id');
    assert.ok(
      (await n(db('manager_quotas').whereIn('account_id', reseller).whereRaw('issued < quota'))) > 0,
      'the reseller has quota left',
    );
    assert.equal((await db('settings').where({ key: 'end_user_self_service' }).first())?.value, 'true');
    assert.equal(
      await n(
        db('devices')
          .join('licenses', 'licenses.id', 'devices.license_id')
          .where('licenses.floating', true)
          .whereNull('devices.deactivated_at')
          .where('devices.floating_expires_at', '>', new Date(now)),
      ),
      2,
      'two floating slots held',
    );
    assert.equal(await n(db('devices').where({ channel: 'airgap' }).whereNull('deactivated_at')), 1);
    assert.equal(await n(db('license_blacklist')), 1);
    for (const days of [30, 60, 90])
      assert.equal(
        await n(
          db('licenses')
            .where('expires_at', '>', new Date(now))
            .where('expires_at', '<=', new Date(now + days * 86_400_000)),
        ),
        days / 30,
        `expiring within ${days} days`,
      );
    assert.ok((await n(db('activation_history').where({ event: 'refused' }))) >= 4);
    assert.ok((await n(db('audit_events').where({ action: 'activation.refused' }).whereNull('order_id'))) >= 1);
    assert.ok((await n(db('manager_quotas').whereRaw('issued >= quota'))) >= 1, 'a quota used up');
    const managers = await database.db('accounts').where({ role: 'manager' }).count({ n: '*' }).first();
    assert.equal(Number(managers!.n), 3);
    // The channel: the reseller is Manager on one order and Viewer on another, under the distributor.
    const roles = await database
      .db('manager_orders')
      .join('accounts', 'accounts.id', 'manager_orders.account_id')
      .join('roles', 'roles.id', 'manager_orders.role_id')
      .leftJoin('accounts as inviter', 'inviter.id', 'manager_orders.invited_by')
      .where('accounts.email', 'reseller@demo.portico.test')
      .orderBy('manager_orders.order_id')
      .select('roles.builtin', 'inviter.email as inviter');
    assert.deepEqual(
      roles.map((r: { builtin: string; inviter: string }) => [r.builtin, r.inviter]),
      [
        ['manager', 'distributor@demo.portico.test'],
        ['viewer', 'distributor@demo.portico.test'],
      ],
    );
  });
});
