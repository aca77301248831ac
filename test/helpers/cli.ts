import { runCli } from '../../sdk/src/cli.ts';

/**
 * The portico-device CLI run inside the test process (runCli, what the binary calls): the same
 * commands, arguments and exit codes as a child process, without a second or so of start-up each.
 * test/e2e/device-cli.test.ts runs the binary itself once, as a child process.
 */

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

export interface DeviceOptions {
  /** The device's state folder (--dir). */
  dir: string;
  /** The working directory relative paths are read from and written to. */
  cwd: string;
  now?: () => Date;
  /** Environment variables on top of this process's (PORTICO_DEVICE_PASSWORD, …); PORTICO_DEVICE_DIR is always cleared. */
  env?: Record<string, string>;
}

export async function runDevice(options: DeviceOptions, ...args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const status = await runCli(['--dir', options.dir, ...args], {
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    cwd: options.cwd,
    env: { ...process.env, PORTICO_DEVICE_DIR: '', ...options.env },
    now: options.now ?? (() => new Date()),
  });
  return { status, stdout, stderr };
}

/** runDevice's exit code and everything it printed, as a person at the machine reads it. */
export async function said(options: DeviceOptions, ...args: string[]): Promise<{ code: number; out: string }> {
  const r = await runDevice(options, ...args);
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Asserts exit code 0 and passes the run on. */
export function ok(run: Run): Run {
  if (run.status !== 0) throw new Error(`exit ${run.status}\n${run.stdout}\n${run.stderr}`);
  return run;
}

/** The arguments of `portico-device init` for ACME-CAD with `key` on `hardwareId`, with the test's public keys. */
export function initArgs(key: string, hardwareId: string): string[] {
  return ['init', '--product', 'ACME-CAD', '--key', key, '--keys', 'portico-keys.json', '--hardware-id', hardwareId];
}
