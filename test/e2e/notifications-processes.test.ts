import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { ParsedMail } from 'mailparser';
import * as catalog from '../../app/models/catalog.ts';
import * as optouts from '../../app/models/notification-optouts.ts';
import { saveSettings } from '../../app/models/settings.ts';
import { periodStart } from '../../app/lib/queue.ts';
import { usingMysql } from '../helpers/db.ts';
import { portalWorld } from '../helpers/portal.ts';
import { exitOf, startServer, useProcessWorld } from '../helpers/process.ts';
import { startSmtp, toOf } from '../helpers/smtp.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;
/** Day `n` (from a Monday) at `hour` UTC. */
const at = (n: number, hour: number) => new Date(Date.UTC(2031, 2, 3 + n, hour));

/**
 * The issue's clock-driven test: two real server.ts processes (both queue runners on) on one database,
 * following one clock (TEST_CLOCK_FILE, app/lib/clock.ts), a real SMTP server. Time moves across the
 * expiry windows (61 → 59 → 29 → 6 → ½ day before the end), across the managers' digest hour and
 * over weeks; every step counts exactly the mails that arrived, per recipient — none twice, nothing to
 * whoever turned a kind off.
 */
describe(`notifications: two server processes, one clock, one ${usingMysql ? 'MySQL/MariaDB' : 'SQLite'} database`, function () {
  this.timeout(180_000);
  let clockFile: string;
  let smtp: Awaited<ReturnType<typeof startSmtp>>;
  const received: ParsedMail[] = [];
  // The signing key exists (the accounts, an admin among them, are portalWorld's).
  const world = useProcessWorld('notify', {
    installed: 'key',
    setUp: async ({ dataDir }) => {
      clockFile = path.join(dataDir, 'clock');
      smtp = await startSmtp();
    },
  });
  after(() => smtp?.close()); // after the world's: its processes are gone by then

  /** Moves the shared clock, waits until this hour's notification run and every mail it queued are done. */
  async function moveTo(time: Date): Promise<ParsedMail[]> {
    const { database, children } = world;
    fs.writeFileSync(clockFile, time.toISOString());
    const key = `notifications.run:${periodStart(time, HOUR).toISOString()}`;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const run = await database.db('jobs').where({ unique_key: key }).first('state');
      const open = await database
        .db('jobs')
        .whereIn('state', ['queued', 'running'])
        .where('run_at', '<=', time)
        .count({ n: '*' })
        .first();
      if (run?.state === 'done' && Number(open?.n) === 0) break;
      assert.ok(
        Date.now() < deadline,
        `the run of ${key} did not finish (${run?.state}); output:\n${children.map((c) => c.output()).join('\n')}`,
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    const mails = await smtp.take();
    received.push(...mails);
    return mails;
  }

  it('sends exactly the expected reminders and digests, none twice, nothing to who opted out', async () => {
    const { db } = world.database;
    const w = await portalWorld(db);
    const end = at(61, 10); // every license of the story expires then
    await db('licenses').where({ id: w.userLicense }).update({ expires_at: end }); // order A: endUser, secondUser
    await db('licenses').where({ id: w.licenseA }).update({ expires_at: end, dispatched_to: 'kim@example.com' });
    await db('licenses').where({ id: w.licenseB }).update({ expires_at: end, dispatched_to: 'lee@example.com' });
    // A fourth license (order A, no recipient of its own: its managers' digest only) that enters its
    // 30-day window on day 56 at 07:00 — an hour before the managers' digest hour.
    const fourth = await catalog.insertLicense(
      db,
      {
        orderId: w.orderA,
        productId: w.product,
        policyId: w.policy,
        licenseKey: 'DDDD-DDDD-DDDD-DDDD-DDDD-DDDD-DDDD',
        entitlements: catalog.DEFAULT_ENTITLEMENTS,
        startDate: at(0, 0),
      },
      new Date(),
    );
    await db('licenses')
      .where({ id: fourth })
      .update({ expires_at: new Date(at(56, 7).getTime() + 29.5 * DAY) });
    await saveSettings(db, { managerDigestHour: 8, staffDigestDay: 1, staffDigestHour: 9 }, new Date());
    const now = new Date();
    await optouts.turnOff(db, w.secondUser.email, 'license_expiring', now);
    await optouts.turnOff(db, w.managerNone.email, 'manager_digest', now);
    fs.writeFileSync(clockFile, at(0, 10).toISOString());

    const servers = await Promise.all(
      [0, 1].map(() =>
        startServer(world, {
          NODE_ENV: 'test',
          WORKERS: '1',
          QUEUE_RUNNER: 'on',
          SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
          MAIL_FROM: 'Portico <portal@vendor.example>',
          TEST_CLOCK_FILE: clockFile,
        }),
      ),
    );

    const reminders = (m: ParsedMail[]) => m.filter((x) => /expires on/.test(x.subject ?? '')).length;
    const managerDigests = (m: ParsedMail[]) => m.filter((x) => /daily summary/.test(x.subject ?? '')).length;
    const staffDigests = (m: ParsedMail[]) => m.filter((x) => /weekly summary/.test(x.subject ?? '')).length;
    // [when, reminders, managers' digests, staff digests]
    const steps: [Date, number, number, number][] = [
      [at(0, 10), 0, 0, 1], // 61 days before: no window yet; Monday after 09:00: the week's staff digest
      [at(2, 10), 3, 4, 0], // 59 days: the 60-day window (endUser, kim, lee; secondUser opted out); 4 managers' digests
      [at(32, 10), 3, 4, 1], // 29 days: the 30-day window (and the fourth license's 60-day item); a new week
      [at(55, 10), 3, 4, 1], // 6 days: the 7-day window; a new week
      [at(56, 7), 0, 0, 0], // the fourth license enters its 30-day window: its item waits for 08:00
      [at(56, 9), 0, 3, 1], // past the digest hour: order A's managers get it; Monday 09:00: a new week
      [at(60, 22), 3, 4, 0], // 12 hours before the end: the 1-day window
      [at(62, 10), 0, 0, 0], // expired: nothing more
    ];
    for (const [when, r, m, s] of steps) {
      const mails = await moveTo(when);
      const got = [reminders(mails), managerDigests(mails), staffDigests(mails)];
      assert.deepEqual(
        got,
        [r, m, s],
        `${when.toISOString()}: ${mails.map((x) => `${toOf(x)} ${x.subject}`).join('; ')}`,
      );
      assert.equal(mails.length, r + m + s, 'no other mail');
    }

    const per = (email: string) => received.filter((x) => toOf(x)?.toLowerCase() === email.toLowerCase()).length;
    assert.equal(per(w.endUser.email), 4, 'one per window');
    assert.equal(per('kim@example.com'), 4);
    assert.equal(per('lee@example.com'), 4);
    assert.equal(per(w.secondUser.email), 0, 'turned license_expiring off');
    assert.equal(per(w.managerNone.email), 0, 'turned manager_digest off');
    assert.equal(per(w.managerAll.email), 5);
    assert.equal(per(w.operator.email), 5);
    assert.equal(per(w.mixed.email), 5, 'one digest for both of their orders');
    assert.equal(per(w.managerB.email), 4);
    assert.equal(per(w.admin.email), 4);
    const notifications = await db('notifications').where({ kind: 'license_expiring' }).count({ n: '*' }).first();
    assert.equal(Number(notifications?.n), 14, '4 windows × 3 licenses + the fourth license’s 60 and 30');
    assert.equal(
      Number((await db('notification_digest_items').whereNull('digest_id').count({ n: '*' }).first())?.n),
      0,
    );
    const runs = await db('jobs').where({ kind: 'notifications.run' }).select('unique_key', 'locked_by');
    assert.equal(new Set(runs.map((j) => j.unique_key)).size, runs.length, 'each hour’s run enqueued once');

    for (const { child } of servers) child.kill('SIGTERM');
    assert.deepEqual(await Promise.all(servers.map((s) => exitOf(s.child))), [0, 0]);
  });
});
