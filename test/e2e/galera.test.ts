import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { assertEachRanOnce, createJobRunsTable, enqueueTestJobs, runnerProcessesOf } from '../helpers/queue.ts';
import { stopProcess, type ServerProcess } from '../helpers/concurrency.ts';
import {
  galeraBurstRounds,
  galeraOneClientApiRounds,
  galeraUrls,
  requireGalera,
  startOnNode,
  useGaleraProcesses,
} from '../helpers/galera.ts';

/**
 * Portico on a multi-primary MariaDB Galera cluster (GALERA_URLS, see test/helpers/galera.ts; skipped
 * when unset): server.ts processes on different nodes, all writing. The long rounds are in
 * test/stress/galera.test.ts.
 */
describe('Galera: server.ts processes on different nodes of one cluster', function () {
  this.timeout(180_000);
  requireGalera(this);

  describe('two processes started at the same time on a new database, through two nodes', () => {
    let database: TestDatabase;
    let dataDir: string;
    const children: ServerProcess[] = [];
    before(async () => {
      database = await createTestDatabase({ server: galeraUrls[0]!, migrate: false });
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-galera-'));
    });
    after(async () => {
      await Promise.all(children.map((c) => stopProcess(c, 'SIGKILL')));
      await database?.drop();
      if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    });

    it('both start, and every migration is applied once', async () => {
      const name = new URL(database.url).pathname.slice(1);
      const servers = await Promise.all([0, 1].map((node) => startOnNode(node, { name }, dataDir, children)));
      const rows = await database.db('knex_migrations').select('name');
      const names = rows.map((r: { name: string }) => r.name);
      assert.ok(names.includes('0001_initial'), names.join(' '));
      assert.equal(new Set(names).size, names.length, `each migration once: ${names.join(' ')}`);
      assert.deepEqual(await database.db('knex_migrations_lock').select('is_locked'), [{ is_locked: 0 }]);
      await Promise.all(servers.map((s) => stopProcess(s.child, 'SIGTERM')));
      for (const s of servers) assert.equal(s.child.exitCode, 0, s.child.output());
    });
  });

  describe('two processes on two nodes', () => {
    const g = useGaleraProcesses();

    it('50 simultaneous activations of a 5-seat license split across both nodes: exactly 5 granted, 45 "no seats", no server error', async () => {
      const conflicts = await galeraBurstRounds(g, 1);
      console.log(`      (conflicts the cluster resolved: ${conflicts})`);
    });

    it('50 simultaneous API activations from one client address through both nodes: 5 granted, 45 no_seats, no 500 (its rate-limit counters conflict too)', async () => {
      await galeraOneClientApiRounds(g, 2);
    });

    it('the job queue: 1,000 jobs claimed by runners on two nodes, each run exactly once', async () => {
      await createJobRunsTable(g.database.db);
      const ids = await enqueueTestJobs(g.database.db, 1000);
      await assertEachRanOnce(
        g.database.db,
        ids,
        g.servers.map((s) => runnerProcessesOf(s.child.pid!)),
        120_000,
      );
    });
  });
});
