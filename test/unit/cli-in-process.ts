import { runCli } from '../../sdk/src/cli.ts';

/**
 * The portico-device CLI run inside the test process (runCli, what the binary calls): the same
 * commands, arguments and exit codes as a child process, without a second or so of start-up each.
 */

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

export async function runDevice(options: { dir: string; cwd: string; now?: () => Date }, ...args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const status = await runCli(['--dir', options.dir, ...args], {
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    cwd: options.cwd,
    env: { ...process.env, PORTICO_DEVICE_DIR: '' },
    now: options.now ?? (() => new Date()),
  });
  return { status, stdout, stderr };
}

/** Asserts exit code 0 and passes the run on. */
export function ok(run: Run): Run {
  if (run.status !== 0) throw new Error(`exit ${run.status}\n${run.stdout}\n${run.stderr}`);
  return run;
}
