import assert from 'node:assert/strict';
import knex, { type Knex } from 'knex';
import request from 'supertest';
import { knexConfig } from '../../db/knexfile.ts';
import {
  GRANTED,
  NO_SEATS,
  PRODUCT,
  assertFullLicense,
  openBrowser,
  range,
  seedVendor,
  tally,
  told,
  upload,
  type Browser,
} from './concurrency.ts';
import type { TestDatabase } from './db.ts';
import { makeDevice } from './device.ts';
import { type ProcessWorld, type ServerProcess, startServer, stopProcess, useProcessWorld } from './process.ts';

/**
 * Portico on a multi-primary MariaDB Galera cluster: server.ts processes, each connected to a
 * different node, all writing at once. GALERA_URLS lists one mysql:// URL per node (the database name
 * in them is ignored: each test file creates its own database through the first node, and the cluster
 * replicates it to the others). Unset: the Galera tests are skipped. .ci/run starts a three-node
 * cluster on loopback with .ci/galera.sh and sets
 *   GALERA_URLS=mysql://root@127.0.0.1:3311/,mysql://root@127.0.0.1:3312/,mysql://root@127.0.0.1:3313/
 */
export const galeraUrls: string[] = (process.env.GALERA_URLS ?? '')
  .split(',')
  .map((u) => u.trim())
  .filter(Boolean);

/** The URL of database `name` through node `i`. */
export function nodeUrl(i: number, name: string): string {
  const url = new URL(galeraUrls[i]!.replace(/^mariadb:/, 'mysql:'));
  url.pathname = `/${name}`;
  return url.toString();
}

/** A small handle on one node (no database selected): status counters and settings. */
export function nodeAdmin(i: number): Knex {
  return knex({ ...knexConfig(nodeUrl(i, '')), pool: { min: 0, max: 1 } });
}

/** Certification failures and brute-force aborts on every node: the conflicts the cluster resolved. */
export async function clusterConflicts(): Promise<number> {
  let sum = 0;
  for (const i of galeraUrls.keys()) {
    const admin = nodeAdmin(i);
    try {
      const [rows] = await admin.raw(
        "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_cert_failures', 'wsrep_local_bf_aborts')",
      );
      for (const r of rows as { Value: string }[]) sum += Number(r.Value);
    } finally {
      await admin.destroy();
    }
  }
  return sum;
}

/** Skips the suite unless GALERA_URLS names at least two nodes; checks they form one ready cluster. */
export function requireGalera(suite: Mocha.Suite) {
  suite.beforeAll(async function () {
    if (galeraUrls.length < 2) this.skip();
    for (const i of galeraUrls.keys()) {
      const admin = nodeAdmin(i);
      try {
        const [rows] = await admin.raw(
          "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_cluster_size', 'wsrep_local_state_comment')",
        );
        const status = Object.fromEntries(
          (rows as { Variable_name: string; Value: string }[]).map((r) => [r.Variable_name, r.Value]),
        );
        assert.equal(status.wsrep_ready, 'ON', `node ${galeraUrls[i]}: wsrep_ready`);
        assert.equal(status.wsrep_local_state_comment, 'Synced', `node ${galeraUrls[i]}: state`);
        assert.ok(
          Number(status.wsrep_cluster_size) >= 2,
          `node ${galeraUrls[i]}: cluster size ${status.wsrep_cluster_size}`,
        );
        // Causal reads (docs/deployment.md): a row committed through one node is seen by the next read on
        // any other — a session opened through one process and used through another, for one.
        const [[sync]] = await admin.raw('SELECT @@global.wsrep_sync_wait AS v');
        assert.ok(Number(sync.v) & 1, `node ${galeraUrls[i]}: wsrep_sync_wait must include 1 (reads), is ${sync.v}`);
      } finally {
        await admin.destroy();
      }
    }
  });
}

/** The name of the world's database (the same on every node). */
export const databaseName = (world: ProcessWorld) => new URL(world.database.url).pathname.slice(1);

/** server.ts of `world` as a real process on node `node` of the cluster. */
export function startOnNode(node: number, world: ProcessWorld): Promise<{ child: ServerProcess; base: string }> {
  return startServer(
    world,
    {
      DATABASE_URL: nodeUrl(node, databaseName(world)),
      TRUST_PROXY: 'true',
      NODE_ENV: 'test',
      OFFLINE_UPLOAD_SLOTS: '100',
    },
    { timeoutMs: 60_000 },
  );
}

export interface GaleraProcesses {
  database: TestDatabase;
  servers: { child: ServerProcess; base: string }[];
  addLicense: Awaited<ReturnType<typeof seedVendor>>;
}

/**
 * Hooks: a migrated database created through node 1, one server.ts process on each of the first two
 * nodes; at the end both stop gracefully (exit 0, no error logged). Read the fields inside tests.
 */
export function useGaleraProcesses(): GaleraProcesses {
  const g = {} as GaleraProcesses;
  useProcessWorld('galera', {
    server: galeraUrls[0],
    installed: 'key+admin',
    setUp: async (w) => {
      g.database = w.database;
      g.addLicense = await seedVendor(w.database.db, new Date());
      g.servers = await Promise.all([0, 1].map((node) => startOnNode(node, w)));
    },
    tearDown: async () => {
      await Promise.all((g.servers ?? []).map((s) => stopProcess(s.child, 'SIGTERM')));
      for (const s of g.servers ?? []) assert.equal(s.child.exitCode, 0, s.child.output());
      assert.doesNotMatch(
        (g.servers ?? []).map((s) => s.child.output()).join('\n'),
        /"level":(50|60)/,
        'no errors logged',
      );
    },
  });
  return g;
}

export const RACE_SEATS = 5;
export const RACERS = 50;

/**
 * One round: RACERS simultaneous activations of a new RACE_SEATS-seat license, through processes on
 * two different nodes: browser i opened its session through bases[i % 2] and uploads through the
 * other. Returns what each page told (status 0: no answer) and the hardware ids told "activated".
 */
export async function galeraRaceRound(
  bases: string[],
  browsers: Browser[],
  addLicense: Awaited<ReturnType<typeof seedVendor>>,
  round: number,
): Promise<{ licenseId: number; answers: string[]; granted: string[] }> {
  const { id, licenseKey } = await addLicense({ maxActivations: RACE_SEATS, maxTransfers: [0, 3, -1][round % 3]! });
  const devices = range(RACERS).map((i) => makeDevice(`HW-G${round}-D${i}`));
  const files = devices.map((d) => d.activationRequest({ product: PRODUCT, licenseKey }).text);
  const responses = await Promise.all(
    files.map((text, i) =>
      upload(bases[(i + 1) % 2]!, browsers[i]!, text, `10.${round % 256}.${i}.1`).then(
        (r) => ({ status: r.status, text: r.text }),
        (err: Error) => ({ status: 0, text: err.message }),
      ),
    ),
  );
  return {
    licenseId: id,
    answers: responses.map(told),
    granted: responses.flatMap((r, i) => (r.status === 200 ? [devices[i]!.hardwareId] : [])),
  };
}

/** The answers of a round with exactly RACE_SEATS granted and every other one "no seats". */
export const EXACT_ROUND = { [GRANTED]: RACE_SEATS, [NO_SEATS]: RACERS - RACE_SEATS };

/**
 * Rounds of 50 simultaneous activations of a new 5-seat license, through two processes on two
 * different nodes: each browser opens its session through one node and uploads through the other.
 * Every round exactly 5 granted and 45 "no seats", no other answer (no 500), and the rows exact.
 * Returns the conflicts the cluster resolved along the way (certification failures + brute-force aborts).
 */
export async function galeraBurstRounds(g: GaleraProcesses, rounds: number): Promise<number> {
  const conflictsBefore = await clusterConflicts();
  const bases = g.servers.map((s) => s.base);
  const browsers = await Promise.all(range(RACERS).map((i) => openBrowser(bases[i % 2]!)));
  for (let round = 0; round < rounds; round++) {
    const { licenseId, answers, granted } = await galeraRaceRound(bases, browsers, g.addLicense, round);
    const label = `Galera round ${round + 1}`;
    assert.deepEqual(
      tally(answers),
      EXACT_ROUND,
      `${label}\n${g.servers
        .map((s) => s.child.output())
        .join('\n')
        .slice(-3000)}`,
    );
    await assertFullLicense(g.database.db, licenseId, RACE_SEATS, RACERS, granted, label);
  }
  return (await clusterConflicts()) - conflictsBefore;
}

/**
 * Rounds of 50 simultaneous online activations (License API) of a new 5-seat license, all from ONE
 * client address, alternately through the two processes: besides the seat, the client's and the
 * license's rate-limit counters are bumped through both nodes at once (autocommit upserts, which
 * Galera certifies like transactions). Exactly 5 granted, 45 no_seats, no 500.
 */
export async function galeraOneClientApiRounds(g: GaleraProcesses, rounds: number) {
  const SEATS = 5;
  const DEVICES = 50;
  for (let round = 0; round < rounds; round++) {
    const { licenseKey } = await g.addLicense({ maxActivations: SEATS });
    const responses = await Promise.all(
      range(DEVICES).map((i) =>
        request(g.servers[i % 2]!.base)
          .post('/api/v1/activate')
          .set('X-Forwarded-For', `10.77.${round}.1`)
          .send({
            request: makeDevice(`HW-GA${round}-D${i}`).activationRequest({ product: PRODUCT, licenseKey }).text,
          }),
      ),
    );
    assert.deepEqual(
      tally(responses.map((r) => `${r.status} ${r.body?.error?.code ?? 'activated'}`)),
      { '200 activated': SEATS, '409 no_seats': DEVICES - SEATS },
      `one-client round ${round + 1}`,
    );
  }
}
