import type { Knex } from 'knex';

/**
 * Redeemable license codes (docs/decisions.md, "Redeemable codes"): a manager generates a batch of
 * single-use codes for one policy of one order, against their quota; each code is stored only as the
 * SHA-256 of its canonical form (high entropy: no slow hash needed) with its last four symbols as a
 * hint. A code is redeemed once (a guarded update on redeemed_at) into one license of the batch's
 * policy, or voided (its unit goes back to the quota of the manager who generated it).
 */
const ts = (t: Knex.CreateTableBuilder, name: string) => t.datetime(name, { precision: 3 });

export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('voucher_batches', (t) => {
    t.increments('id');
    t.integer('order_id').unsigned().notNullable().references('orders.id').onDelete('CASCADE');
    t.integer('policy_id').unsigned().notNullable().references('license_policies.id');
    t.integer('product_id').unsigned().notNullable().references('products.id');
    t.integer('created_by_account_id').unsigned().nullable().references('accounts.id').onDelete('SET NULL');
    /** Whether the codes were counted against the creator's quota (admins have none). */
    t.boolean('quota_counted').notNullable().defaultTo(false);
    t.integer('count').notNullable();
    ts(t, 'expires_at').notNullable();
    ts(t, 'created_at').notNullable();
    t.index(['order_id']);
  });
  await db.schema.createTable('vouchers', (t) => {
    t.increments('id');
    t.integer('batch_id').unsigned().notNullable().references('voucher_batches.id').onDelete('CASCADE');
    t.string('code_hash', 64).notNullable().unique();
    t.string('hint', 8).notNullable();
    ts(t, 'expires_at').notNullable();
    ts(t, 'redeemed_at').nullable();
    t.integer('redeemed_by_account_id').unsigned().nullable().references('accounts.id').onDelete('SET NULL');
    t.string('redeemed_channel', 16).nullable();
    t.integer('license_id').unsigned().nullable().references('licenses.id').onDelete('SET NULL');
    ts(t, 'voided_at').nullable();
    t.integer('voided_by_account_id').unsigned().nullable().references('accounts.id').onDelete('SET NULL');
    t.index(['batch_id']);
    t.index(['redeemed_by_account_id']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('vouchers');
  await db.schema.dropTableIfExists('voucher_batches');
}
