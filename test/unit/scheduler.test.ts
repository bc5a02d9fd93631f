/**
 * The watcher's Scheduler with a fake clock: coalescing, and which runs count as repairs for
 * the rate limit.
 */
import test from 'ava';
import { DEFAULT_SCHEDULER, Scheduler, type RunResult, type Timers } from '../../src/daemon/scheduler.js';

/** A manual clock: advance() fires due timers in order. */
function fakeTimers() {
  let now = 0;
  let seq = 0;
  const due = new Map<number, { at: number; fn: () => void }>();
  const timers: Timers = {
    now: () => now,
    setTimeout: (fn, ms) => {
      const id = ++seq;
      due.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout: (id) => void due.delete(id as number),
  };
  async function advance(ms: number) {
    const end = now + ms;
    for (;;) {
      const next = [...due.entries()].sort((a, b) => a[1].at - b[1].at)[0];
      if (!next || next[1].at > end) break;
      due.delete(next[0]);
      now = next[1].at;
      next[1].fn();
      for (let i = 0; i < 5; i++) await Promise.resolve(); // let the run settle
    }
    now = end;
  }
  return { timers, advance };
}

async function fight(result: RunResult) {
  const { timers, advance } = fakeTimers();
  let runs = 0;
  let backoffs = 0;
  const s = new Scheduler(async () => (runs++, result), DEFAULT_SCHEDULER, timers, () => backoffs++);
  // A kernel event every 50 ms for 2 s, each run writing.
  for (let i = 0; i < 40; i++) {
    s.trigger(`event ${i}`, true);
    await advance(50);
  }
  return { runs, backoffs, backoff: s.backoff };
}

test('writes that undo someone else (same desired state) are repairs: rate-limited after the limit', async (t) => {
  const r = await fight({ wrote: 1 });
  t.true(r.backoffs > 0);
  t.true(r.backoff >= 1000);
  t.true(r.runs < 40, `${r.runs} runs`);
});

test('writes that follow a change of the desired state are no repairs: never rate-limited', async (t) => {
  const r = await fight({ wrote: 1, repair: false });
  t.is(r.backoffs, 0);
  t.is(r.backoff, 0);
  t.is(r.runs, 40);
});
