import fs from 'node:fs';

/** The source of "now" for everything time-dependent, so tests can move time forward. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock for tests: starts at the real time and only moves when told to. */
export class ManualClock implements Clock {
  private current: number;
  constructor(start: Date = new Date()) {
    this.current = start.getTime();
  }
  now(): Date {
    return new Date(this.current);
  }
  advance(ms: number): void {
    this.current += ms;
  }
}

/**
 * A clock for process tests (test/e2e/notifications-processes.test.ts): the time is the ISO date the
 * file holds, read at every call, so several server processes follow one clock a test moves by
 * rewriting the file. server.ts uses it only when NODE_ENV=test and TEST_CLOCK_FILE is set; an
 * unreadable file reads as the real time.
 */
export function fileClock(file: string): Clock {
  return {
    now() {
      try {
        const at = new Date(fs.readFileSync(file, 'utf8').trim());
        if (!Number.isNaN(at.getTime())) return at;
      } catch {
        // not written yet
      }
      return new Date();
    },
  };
}
