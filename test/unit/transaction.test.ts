import assert from 'node:assert/strict';
import { isSerializationFailure, MAX_ATTEMPTS, retryOnConflict } from '../../app/lib/transaction.ts';

/** Which database errors the transaction helper runs again (app/lib/transaction.ts). */
describe('isSerializationFailure', () => {
  // As mysql2 reports them; the Galera ones as seen on a three-node MariaDB 10.11 / galera-4 26.4
  // cluster (.ci/galera.sh): two transactions updating one row through two nodes.
  const mysqlError = (errno: number, code: string, sqlState: string, message: string) =>
    Object.assign(new Error(message), { errno, code, sqlState, sqlMessage: message });

  it('retries a deadlock, a lock wait timeout and both kinds of Galera conflict (all errno 1213)', () => {
    const deadlock = 'Deadlock found when trying to get lock; try restarting transaction';
    // The loser of certification, at its COMMIT through the second node.
    assert.equal(isSerializationFailure(mysqlError(1213, 'ER_LOCK_DEADLOCK', '40001', deadlock)), true);
    // A local transaction aborted by a replicated write set (brute-force abort), at its next statement: the same error.
    assert.equal(isSerializationFailure(mysqlError(1213, 'ER_LOCK_DEADLOCK', '40001', deadlock)), true);
    assert.equal(
      isSerializationFailure(
        mysqlError(1205, 'ER_LOCK_WAIT_TIMEOUT', 'HY000', 'Lock wait timeout exceeded; try restarting transaction'),
      ),
      true,
    );
    // Older Galera versions word it themselves.
    assert.equal(
      isSerializationFailure(
        new Error('WSREP detected deadlock/conflict and aborted the transaction. Try restarting the transaction'),
      ),
      true,
    );
    assert.equal(isSerializationFailure(Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' })), true);
  });

  it('does not retry what a second attempt cannot fix', () => {
    assert.equal(
      isSerializationFailure(mysqlError(1062, 'ER_DUP_ENTRY', '23000', "Duplicate entry 'x' for key 'nonce'")),
      false,
    );
    // A node that lost the cluster's quorum refuses every statement until it is back: no retry helps.
    assert.equal(
      isSerializationFailure(
        mysqlError(1047, 'ER_UNKNOWN_COM_ERROR', '08S01', 'WSREP has not yet prepared node for application use'),
      ),
      false,
    );
    assert.equal(isSerializationFailure(new Error('boom')), false);
    assert.equal(isSerializationFailure(null), false);
    assert.equal(isSerializationFailure('1213'), false);
  });
});

describe('retryOnConflict (one statement outside a transaction)', () => {
  const conflict = () =>
    Object.assign(new Error('Deadlock found when trying to get lock; try restarting transaction'), { errno: 1213 });

  it('runs the statement again after a conflict, and returns its result', async () => {
    let calls = 0;
    const result = await retryOnConflict(async () => {
      calls += 1;
      if (calls < 3) throw conflict();
      return 'done';
    });
    assert.equal(result, 'done');
    assert.equal(calls, 3);
  });

  it('gives up after MAX_ATTEMPTS conflicts, and never retries another error', async () => {
    let calls = 0;
    await assert.rejects(
      retryOnConflict(async () => {
        calls += 1;
        throw conflict();
      }),
      /Deadlock/,
    );
    assert.equal(calls, MAX_ATTEMPTS);
    calls = 0;
    await assert.rejects(
      retryOnConflict(async () => {
        calls += 1;
        throw Object.assign(new Error('Duplicate entry'), { errno: 1062 });
      }),
      /Duplicate/,
    );
    assert.equal(calls, 1);
  });
});
