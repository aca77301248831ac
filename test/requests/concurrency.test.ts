import assert from 'node:assert/strict';
import request from 'supertest';
import { usingMysql } from '../helpers/db.ts';
import { makeDevice } from '../helpers/device.ts';
import { adminAgent } from '../helpers/app.ts';
import {
  GRANTED,
  NO_SEATS,
  PRODUCT,
  activationBurstRounds,
  activeDevices,
  assertFullLicense,
  floatingRounds,
  licenseAudit,
  licenseRow,
  mixedRounds,
  openBrowser,
  range,
  tally,
  told,
  upload,
  useOneServer,
  voucherRaceRounds,
} from '../helpers/concurrency.ts';
import { injectSerializationFailures } from '../../app/lib/transaction.ts';
import { decodeEnvelope } from '../../sdk/src/envelope.ts';

/**
 * Seat limits under real concurrency (ARCHITECTURE "Scale"): many requests at once over real HTTP,
 * against the real database (SQLite, or MariaDB/MySQL with DATABASE_URL=mysql://…), no mocks. The
 * rules hold through guarded updates and unique keys, so every count below must be exact.
 *
 * One round of each scenario runs here (npm test); test/stress/concurrency.test.ts runs them for many
 * rounds (npm run test:stress), test/e2e/concurrency-processes.test.ts across server.ts processes.
 */

describe('Seat limits under concurrency (real HTTP, real database)', function () {
  this.timeout(120_000);

  describe('one server', () => {
    const s = useOneServer();

    it('50 simultaneous activations of a 5-seat license leave exactly 5 devices, 5 granted and 45 "no seats" events — one round (npm run test:stress: 20)', async () => {
      await activationBurstRounds(s, 1);
    });

    it('50 racing redemptions of one code through the License API: one license, 49 "voucher_used" — one round (npm run test:stress: 20)', async () => {
      await voucherRaceRounds(s, 1);
    });

    it('50 racing activations on 5 seats while every transaction meets serialization failures: 5 granted, 45 "no seats", no 500', async () => {
      // The transaction helper must absorb conflicts (deadlock, lock wait, Galera certification, SQLite
      // busy): here every transaction fails its first two attempts after doing its work.
      const { id, licenseKey } = await s.addLicense({ maxActivations: 5, maxTransfers: 0 });
      const browsers = await Promise.all(range(50).map(() => openBrowser(s.base)));
      const devices = range(50).map((i) => makeDevice(`HW-CONFLICT-${i}`));
      const injected = injectSerializationFailures(s.t.db, 2);
      try {
        const responses = await Promise.all(
          devices.map((d, i) =>
            upload(s.base, browsers[i]!, d.activationRequest({ product: PRODUCT, licenseKey }).text, `10.240.${i}.1`),
          ),
        );
        assert.deepEqual(tally(responses.map(told)), { [GRANTED]: 5, [NO_SEATS]: 45 });
        assert.ok(
          injected.failures() >= 10,
          `each of the 5 grants met 2 injected failures (${injected.failures()} in all)`,
        );
        const granted = responses.flatMap((r, i) => (r.status === 200 ? [devices[i]!.hardwareId] : []));
        await assertFullLicense(s.t.db, id, 5, 50, granted, 'with injected conflicts');
      } finally {
        injected.stop();
      }
    });

    it('50 online checks and 50 console refreshes of one device at the same moment: 100 distinct counters, no 500', async () => {
      const { id, licenseKey } = await s.addLicense({ maxActivations: 1 });
      const device = makeDevice('HW-COUNTER');
      const browser = await openBrowser(s.base);
      assert.equal(
        (await upload(s.base, browser, device.activationRequest({ product: PRODUCT, licenseKey }).text, '10.241.0.1'))
          .status,
        200,
      );
      const activationId = (await activeDevices(s.t.db, id))[0]!.id;
      const admin = (await adminAgent(s.t)).agent;
      const check = (i: number) =>
        request(s.base)
          .post('/api/v1/check')
          .set('X-Forwarded-For', `10.242.${i}.1`)
          .send({ request: device.checkRequest({ product: PRODUCT, licenseId: id, activationId }) });
      const refresh = () => admin.get(`/admin/licenses/${id}/devices/${activationId}/refresh`).buffer(true);
      const answers = await Promise.all(range(100).map((i) => (i % 2 ? check(i) : refresh())));
      assert.deepEqual(tally(answers.map((a) => a.status)), { 200: 100 });
      const counters = answers.map((a) => {
        const text = a.body?.license ?? a.text;
        return Number(JSON.parse(decodeEnvelope(text).payloadBytes.toString('utf8')).counter);
      });
      assert.deepEqual(
        [...counters].sort((a, b) => a - b),
        range(100).map((i) => i + 1),
        'every counter once, 1 to 100',
      );
      assert.equal(
        Number((await s.t.db('devices').where({ id: activationId }).first('license_counter')).license_counter),
        100,
      );
    });

    it("60 simultaneous activations of 30 different licenses (two each) are all granted: none fails on another license's locks", async () => {
      // Under MySQL's REPEATABLE READ the seat checks took gap locks between the devices of
      // neighbouring licenses, and concurrent activations of different licenses deadlocked (HTTP 500).
      const LICENSES = 30;
      const licensesMade = await Promise.all(
        range(LICENSES).map(() => s.addLicense({ maxActivations: 2, maxTransfers: 0 })),
      );
      const browsers = await Promise.all(range(LICENSES * 2).map(() => openBrowser(s.base)));
      const devices = range(LICENSES * 2).map((i) => makeDevice(`HW-MANY-${i}`));
      const responses = await Promise.all(
        devices.map((d, i) =>
          upload(
            s.base,
            browsers[i]!,
            d.activationRequest({ product: PRODUCT, licenseKey: licensesMade[i % LICENSES]!.licenseKey }).text,
            `10.200.${i}.1`,
          ),
        ),
      );
      assert.deepEqual(tally(responses.map(told)), { [GRANTED]: LICENSES * 2 });
      for (const { id } of licensesMade) {
        assert.equal((await activeDevices(s.t.db, id)).length, 2);
        assert.deepEqual(await licenseRow(s.t.db, id), { timesActivated: 2, transferCount: 0 });
      }
    });

    it('floating license: checks of lapsed devices and new online activations at the same time free and take slots without a server error, and seats = active devices — one round (npm run test:stress: 4)', async () => {
      await floatingRounds(s, 1);
    });

    it('activations, device resets, license resets and deactivation uploads at the same time keep times_activated = active devices ≤ seats, and count transfers exactly — two rounds, one with a license reset (npm run test:stress: 6)', async () => {
      await mixedRounds(s, 2);
    });

    it('MySQL: a connection killed in the middle of an activation leaves no half-written rows; the same request then succeeds', async function () {
      if (!usingMysql) this.skip();
      const { id, licenseKey } = await s.addLicense({ maxActivations: 2 });
      const browser = await openBrowser(s.base);
      const device = makeDevice('HW-KILLED');
      const req = device.activationRequest({ product: PRODUCT, licenseKey });
      // Hold an uncommitted row with this request's nonce: the activation takes its seat and writes its
      // device row, then waits on the nonce's primary key — mid-transaction, with writes to undo. Its
      // connection is killed there, and only then is the blocking row released.
      const blocker = await s.t.db.transaction();
      try {
        const blockerId = Number((await blocker.raw('SELECT CONNECTION_ID() AS id'))[0][0].id);
        // (No license_id: its foreign key would share-lock the license row and stop the activation earlier, at its seat.)
        await blocker('request_nonces').insert({
          nonce: req.nonce,
          kind: 'activation',
          license_id: null,
          device_id: null,
          created_at: s.t.clock.now(),
        });
        const pending = upload(s.base, browser, req.text, '10.250.0.1').then((r) => r);
        let victim: number | null = null;
        for (const started = Date.now(); victim === null; await new Promise((r) => setTimeout(r, 10))) {
          assert.ok(Date.now() - started < 15_000, 'the activation never reached its nonce insert');
          const [rows] = await s.t.db.raw(
            "SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> ? AND INFO LIKE 'insert into `request_nonces`%' AND INSTR(INFO, ?) > 0",
            [blockerId, req.nonce],
          );
          if (rows.length) victim = Number(rows[0].id);
        }
        // Its device row exists, uncommitted: proof that the kill lands after writes.
        const [locks] = await s.t.db.raw(
          'SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = ? AND trx_rows_modified >= 2',
          [victim],
        );
        assert.equal(Number(locks[0].n), 1, 'the activation had written its seat and device row when killed');
        await s.t.db.raw('KILL CONNECTION ?', [victim]);
        const killed = await pending;
        assert.equal(killed.status, 500, 'the request whose connection died fails plainly');
      } finally {
        await blocker.rollback();
      }
      assert.equal(
        await s.t
          .db('devices')
          .where({ license_id: id })
          .count({ n: '*' })
          .first()
          .then((r) => Number(r!.n)),
        0,
        'no device row',
      );
      assert.equal(
        await s.t
          .db('request_nonces')
          .where({ nonce: req.nonce })
          .count({ n: '*' })
          .first()
          .then((r) => Number(r!.n)),
        0,
        'no nonce row',
      );
      assert.deepEqual(
        await licenseRow(s.t.db, id),
        { timesActivated: 0, transferCount: 0 },
        'the seat was given back',
      );
      assert.equal(
        await s.t
          .db('activation_history')
          .where({ license_id: id })
          .count({ n: '*' })
          .first()
          .then((r) => Number(r!.n)),
        0,
        'no history row',
      );
      assert.deepEqual(await licenseAudit(s.t.db, id), [], 'no audit event for a change that never happened');

      // The pool replaced the dead connection, and the very same request now activates.
      const again = await upload(s.base, browser, req.text, '10.250.0.2');
      assert.equal(again.status, 200, again.text);
      assert.match(again.text, /License activated/);
      assert.deepEqual(
        (await activeDevices(s.t.db, id)).map((d) => d.hardwareId),
        ['HW-KILLED'],
      );
      assert.deepEqual(await licenseRow(s.t.db, id), { timesActivated: 1, transferCount: 0 });
      assert.equal(
        await s.t
          .db('request_nonces')
          .where({ nonce: req.nonce, license_id: id })
          .count({ n: '*' })
          .first()
          .then((r) => Number(r!.n)),
        1,
      );
      assert.deepEqual(
        (await licenseAudit(s.t.db, id)).map((e) => e.action),
        ['activation.granted'],
      );
    });
  });
});
