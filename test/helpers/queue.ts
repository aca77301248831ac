import type { Knex } from 'knex';

/** The table the test-only job kind `test.record` (app/jobs.ts) writes one row per run into. */
export async function createJobRunsTable(db: Knex): Promise<void> {
  await db.schema.createTable('test_job_runs', (t) => {
    t.increments('id');
    t.integer('job_id').notNullable().index();
    t.integer('attempt').notNullable();
    t.string('runner', 32).notNullable();
  });
}

/** How many times each job ran (job id → runs). */
export async function runsPerJob(db: Knex): Promise<Map<number, number>> {
  const rows = (await db('test_job_runs').select('job_id').count({ n: '*' }).groupBy('job_id')) as {
    job_id: unknown;
    n: unknown;
  }[];
  return new Map(rows.map((r) => [Number(r.job_id), Number(r.n)]));
}
