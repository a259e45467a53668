// How long the page waits before its next try to reach a server that went away: exponential, capped,
// with jitter, so a class of forty whose replica died does not come back in one burst.

/** The schedule the stream's reconnect uses: ms before try 1, doubling each try, at most `cap` ms. */
export const RECONNECT = Object.freeze({ base: 500, factor: 2, cap: 10_000 });

/**
 * Milliseconds to wait before try `attempt` (0 for the first retry): half of min(cap, base * factor^attempt)
 * plus a random part of up to the other half ("equal jitter"), so no wait is below half its step and none
 * is above the cap. random: a function -> [0, 1).
 */
export function backoffDelay(attempt, { base, factor, cap } = RECONNECT, random = Math.random) {
  const step = Math.min(cap, base * factor ** Math.max(0, attempt));
  return step / 2 + random() * (step / 2);
}
