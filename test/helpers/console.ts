import type { Config } from '../../config/index.ts';
import { adminAgent, buildTestApp, createAccount, csrfFrom, loginAgent, type TestApp } from './app.ts';

/** A logged-in client of the test app (cookies kept). */
export type Agent = Awaited<ReturnType<typeof loginAgent>>;

/** A test app (built with `overrides`) and an admin logged in to it: the fixture of a console test file. */
export async function adminConsole(
  overrides: Partial<Config> = {},
): Promise<{ t: TestApp; agent: Agent; adminId: number }> {
  const t = await buildTestApp(overrides);
  const { agent, admin } = await adminAgent(t);
  return { t, agent, adminId: admin.id };
}

/**
 * Whom the console answers 404: a logged-in manager and a logged-in end user, each with the CSRF token
 * of a page of their own (so that a POST's 404 is the console's answer, not a missing token's 403).
 */
export async function outsiders(t: TestApp): Promise<{ role: 'manager' | 'end_user'; agent: Agent; csrf: string }[]> {
  const result = [];
  for (const role of ['manager', 'end_user'] as const) {
    const account = await createAccount(t.db, { role });
    const agent = await loginAgent(t.app, account.email, account.password);
    const page = await agent.get('/account').expect(200);
    result.push({ role, agent, csrf: csrfFrom(page.text) });
  }
  return result;
}
