import assert from 'node:assert/strict';
import http from 'node:http';
import { createRequire } from 'node:module';
import mysql from 'mysql2/promise';
import { sqliteFile } from '../../db/knexfile.ts';
import { startServer, useProcessWorld } from '../helpers/process.ts';

/** The SQLite driver itself (it ships no type declarations): the lock holder beside the server process. */
const SqliteDatabase = createRequire(import.meta.url)('better-sqlite3') as new (
  file: string,
) => { exec(sql: string): void; close(): void };

/**
 * A redirect is sent only once the session it depends on is stored (app/middleware/session-before-redirect.ts).
 * A browser follows a 303 as soon as it has the headers; had they left before the session write, the
 * next page would find no session (after a login: bounced to the login page; after a logout: no message,
 * no identity provider's sign-out link). Here the sessions table is held locked by another connection
 * while a real server process (the test reads its answer over a socket, like a browser) handles a
 * request whose redirect changed the session: no header may arrive while the write cannot happen.
 * The race is MySQL/MariaDB's (an asynchronous write on a pool): without the guard this test fails
 * there. On SQLite the write runs synchronously in the server process before its headers are flushed,
 * so the same assertion holds there either way; it runs on both, as every tier does.
 */
describe('a redirect waits for its session to be stored (server process, real database)', function () {
  this.timeout(60_000);
  const world = useProcessWorld('redirect', { installed: 'key+admin' });

  /** Another connection that holds the sessions table (SQLite: the write lock; MySQL: LOCK TABLES … WRITE). */
  async function lockSessions(): Promise<() => Promise<void>> {
    const file = sqliteFile(world.database.url);
    if (file) {
      const conn = new SqliteDatabase(file);
      conn.exec('BEGIN IMMEDIATE');
      return async () => {
        conn.exec('ROLLBACK');
        conn.close();
      };
    }
    const conn = await mysql.createConnection(world.database.url);
    await conn.query('LOCK TABLES sessions WRITE');
    return async () => {
      await conn.query('UNLOCK TABLES');
      await conn.end();
    };
  }

  it('an anonymous visit to a portal page: no 303 before the session with its return path is written', async () => {
    const { base } = await startServer(world);
    const unlock = await lockSessions();
    let unlocked = false;
    try {
      const answer = new Promise<http.IncomingMessage>((resolve, reject) => {
        http.get(`${base}/portal/orders`, resolve).on('error', reject);
      });
      const early = await Promise.race([answer.then(() => 'headers'), new Promise((r) => setTimeout(r, 800, 'none'))]);
      assert.equal(early, 'none', 'the redirect left while its session could not be written');
      await unlock();
      unlocked = true;
      const res = await answer;
      res.resume();
      assert.equal(res.statusCode, 303);
      assert.match(String(res.headers.location), /\/login$/);
      const cookie = String(res.headers['set-cookie']?.[0] ?? '');
      const sid = decodeURIComponent(/portico\.sid=([^;]+)/.exec(cookie)?.[1] ?? '')
        .replace(/^s:/, '')
        .split('.')[0];
      assert.ok(sid, `a session cookie: ${cookie}`);
      // Stored before the headers left, with the page to come back to.
      const row = await world.database.db('sessions').where({ sid }).first();
      assert.ok(row, 'the session is in the store when the redirect arrives');
      const sess = typeof row.sess === 'string' ? JSON.parse(row.sess) : row.sess;
      assert.equal(sess.returnTo, '/portal/orders');
    } finally {
      if (!unlocked) await unlock();
    }
  });
});
