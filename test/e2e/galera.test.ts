import assert from 'node:assert/strict';
import { assertEachRanOnce, createJobRunsTable, enqueueTestJobs, runnerProcessesOf } from '../helpers/queue.ts';
import { stopProcess, useProcessWorld } from '../helpers/process.ts';
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
    const world = useProcessWorld('galera', { server: galeraUrls[0], migrate: false });

    it('both start, and every migration is applied once', async () => {
      const { database } = world;
      const servers = await Promise.all([0, 1].map((node) => startOnNode(node, world)));
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
