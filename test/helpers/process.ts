import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Runs one of the project's TypeScript entry points (server.ts, a script) as a real child process. */
export function runScript(
  script: string,
  env: Record<string, string>,
): ChildProcessWithoutNullStreams & { output: () => string } {
  // node itself with the tsx loader (not the tsx wrapper), so a signal reaches the real process.
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: projectRoot,
    env: { ...process.env, ...env },
  });
  // A test run that ends early (failure, Ctrl-C) must not leave servers running behind it.
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  child.once('exit', () => process.off('exit', reap));
  let out = '';
  child.stdout.on('data', (d) => (out += d.toString()));
  child.stderr.on('data', (d) => (out += d.toString()));
  return Object.assign(child, { output: () => out });
}

export function waitFor(
  child: ReturnType<typeof runScript>,
  pattern: RegExp,
  timeoutMs = 20_000,
): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const timer = setInterval(() => {
      const match = pattern.exec(child.output());
      if (match) {
        clearInterval(timer);
        resolve(match);
      } else if (child.exitCode !== null || child.signalCode !== null || Date.now() - started > timeoutMs) {
        clearInterval(timer);
        reject(new Error(`did not see ${pattern} (exit ${child.exitCode}); output:\n${child.output()}`));
      }
    }, 50);
  });
}

export function exitOf(child: ReturnType<typeof runScript>): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}
