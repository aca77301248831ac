import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import type { Knex } from 'knex';
import { createAccount } from '../helpers/app.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { makeDevice } from '../helpers/device.ts';
import { type ProcessWorld, projectRoot, startServer, stopProcess, useProcessWorld } from '../helpers/process.ts';
import { PRODUCT, range, seedVendor } from '../helpers/concurrency.ts';
import { installationEnv, ok, porticoProcess } from '../helpers/portico.ts';
import { COMMAND_NAMES } from '../../app/cli/portico.ts';
import { openDatabase } from '../../db/index.ts';
import { ensureSigningKey } from '../../app/services/signing-keys.ts';
import { verifyEnvelope } from '../../sdk/src/envelope.ts';

/**
 * Backups that restore (docs/operations.md, "Backup and restore"), with real processes: a server
 * process answers activations from four loops while `portico backup` (the real program) snapshots its
 * database and keys; `portico restore` puts the archive into a fresh DATA_DIR and an empty database;
 * a new server process starts on them. Every license, device and audit row committed before the
 * backup started is there (and nothing that never existed), license files issued before it still
 * verify with the restored server's published keys, and the restored server signs new ones with the
 * same key. On SQLite and on MariaDB (DATABASE_URL=mysql://…).
 */

type Rows = { licenses: Set<number>; devices: Map<number, string>; audit: Set<number> };

async function rowsOf(db: Knex): Promise<Rows> {
  const ids = async (table: string) =>
    new Set(((await db(table).select('id')) as { id: number }[]).map((r) => Number(r.id)));
  const devices = (await db('devices').select('id', 'license_id', 'hardware_id')) as {
    id: number;
    license_id: number;
    hardware_id: string;
  }[];
  return {
    licenses: await ids('licenses'),
    devices: new Map(devices.map((d) => [Number(d.id), `${d.license_id}:${d.hardware_id}`])),
    audit: await ids('audit_events'),
  };
}

/** A server.ts of the installation the CLI sees (database `url`, DATA_DIR `dataDir`). */
const serveInstallation = (world: ProcessWorld, url: string, dataDir: string) =>
  startServer(world, {
    ...installationEnv(url, dataDir),
    BASE_URL: '', // unset: the server announces its own address
    TRUST_PROXY: 'true',
    WORKERS: '1',
  });

async function trustedKeys(base: string): Promise<Map<string, string>> {
  const doc = (await request(base).get('/.well-known/portico-keys.json').expect(200)).body as {
    keys: { kid: string; pem: string; status: string }[];
  };
  return new Map(doc.keys.filter((k) => k.status !== 'retired').map((k) => [k.kid, k.pem]));
}

describe('backup of a running server under load, restored into a fresh installation', function () {
  this.timeout(240_000);
  let target: TestDatabase;
  // The source installation's database; its DATA_DIR and the restored one are folders of world.dataDir.
  const world = useProcessWorld('backup-e2e', {
    setUp: async () => {
      target = await createTestDatabase({ migrate: false });
    },
  });
  after(() => target?.drop()); // after the world's: no server is connected to it any more

  it('keeps every row committed before the backup; old license files verify and new ones are signed after the restore', async () => {
    const { database: source, dataDir: work } = world;
    const sourceDir = path.join(work, 'source-data');
    const targetDir = path.join(work, 'restored-data');
    const archive = path.join(work, 'portico-backup.tgz');
    fs.mkdirSync(sourceDir, { mode: 0o700 });
    const now = new Date();
    const { kid } = await ensureSigningKey(source.db, sourceDir, now);
    await createAccount(source.db, { role: 'admin' });
    const addLicense = await seedVendor(source.db, now);
    const licenses = await Promise.all(range(3).map(() => addLicense({ maxActivations: 10_000 })));

    const server = await serveInstallation(world, source.url, sourceDir);
    let phase: 'before' | 'during' | 'after' = 'before';
    const granted: { phase: string; license: string; hardwareId: string }[] = [];
    const failures: string[] = [];
    let stop = false;
    let n = 0;
    const loop = async (worker: number) => {
      while (!stop) {
        const i = n++;
        const { licenseKey } = licenses[i % licenses.length]!;
        const device = makeDevice(`HW-BACKUP-${worker}-${i}`);
        const startedIn = phase;
        const res = await request(server.base)
          .post('/api/v1/activate')
          .set('X-Forwarded-For', `10.77.${Math.floor(i / 250) % 250}.${(i % 250) + 1}`)
          .send({ request: device.activationRequest({ product: PRODUCT, licenseKey }).text });
        if (res.status === 200)
          granted.push({
            phase: startedIn === phase ? phase : 'during',
            license: res.body.license,
            hardwareId: device.hardwareId,
          });
        else failures.push(`${res.status} ${JSON.stringify(res.body)}`);
      }
    };
    const loops = range(4).map(loop);
    while (granted.length < 20 && !failures.length) await new Promise((r) => setTimeout(r, 20));

    // Everything committed up to here must be in the backup.
    const committed = await rowsOf(source.db);
    const filesBefore = granted.filter((g) => g.phase === 'before');
    phase = 'during';
    const backup = ok(await porticoProcess(installationEnv(source.url, sourceDir), ['backup', '--out', archive]));
    const duringBackup = granted.filter((g) => g.phase === 'during').length;
    phase = 'after';
    while (granted.filter((g) => g.phase === 'after').length < 5 && !failures.length)
      await new Promise((r) => setTimeout(r, 20));
    stop = true;
    await Promise.all(loops);
    assert.deepEqual(failures, [], 'every activation under load was granted');
    assert.ok(duringBackup > 0, `activations completed while the backup ran (${duringBackup}): it ran under load`);
    assert.match(backup.stdout, /Backup written to .*portico-backup\.tgz/);
    assert.equal(fs.statSync(archive).mode & 0o777, 0o600, 'the archive holds secrets: 0600');
    const everything = await rowsOf(source.db);
    await stopProcess(server.child, 'SIGTERM');

    const restore = ok(await porticoProcess(installationEnv(target.url, targetDir), ['restore', '--from', archive]));
    assert.match(restore.stdout, /Restored the backup of .* \(Portico \d+\.\d+\.\d+, schema \d{4}_\w+\)/);
    assert.equal(fs.statSync(path.join(targetDir, 'keys', `${kid}.pem`)).mode & 0o777, 0o600);

    const restoredDb = openDatabase(target.url);
    let restored: Rows;
    try {
      restored = await rowsOf(restoredDb);
    } finally {
      await restoredDb.destroy();
    }
    for (const id of committed.licenses) assert.ok(restored.licenses.has(id), `license ${id}`);
    for (const [id, what] of committed.devices) assert.equal(restored.devices.get(id), what, `device ${id}`);
    for (const id of committed.audit) assert.ok(restored.audit.has(id), `audit event ${id}`);
    // A snapshot of one instant: nothing that never existed, and no device without its audit event.
    for (const id of restored.devices.keys()) assert.ok(everything.devices.has(id), `restored device ${id} existed`);
    for (const id of restored.audit) assert.ok(everything.audit.has(id), `restored audit event ${id} existed`);

    const again = await serveInstallation(world, target.url, targetDir);
    const keys = await trustedKeys(again.base);
    for (const g of filesBefore) {
      const payload = verifyEnvelope(g.license, { expectedType: 'license', trustedKeys: keys }).payload as {
        hardwareId: string;
      };
      assert.equal(payload.hardwareId, g.hardwareId);
    }
    const device = makeDevice('HW-AFTER-RESTORE');
    const res = await request(again.base)
      .post('/api/v1/activate')
      .set('X-Forwarded-For', '10.78.0.1')
      .send({ request: device.activationRequest({ product: PRODUCT, licenseKey: licenses[0]!.licenseKey }).text })
      .expect(200);
    const signed = verifyEnvelope(res.body.license, { expectedType: 'license', trustedKeys: keys });
    assert.equal(signed.kid, kid, 'the restored server signs with the restored key');
    await stopProcess(again.child, 'SIGTERM');
    assert.equal(again.child.exitCode, 0, again.child.output());
  });

  it('the compiled build (node dist/portico.js) is the same program', async function () {
    if (!fs.existsSync(path.join(projectRoot, 'dist', 'portico.js'))) {
      // The e2e tier runs after `npm run build` (CI does); without a build there is nothing to run.
      this.skip();
    }
    const env = installationEnv(world.database.url, path.join(world.dataDir, 'source-data'));
    const help = ok(await porticoProcess(env, ['help'], { built: true }));
    for (const name of COMMAND_NAMES) assert.match(help.stdout, new RegExp(`^  ${name} `, 'm'), name);
    assert.match(ok(await porticoProcess(env, ['migrate:status'], { built: true })).stdout, /Pending: none/);
    assert.equal((await porticoProcess(env, ['restore'], { built: true })).status, 2);
  });
});
