// What the browser tests (tests/e2e) read and set, in one place. Nothing here acts unless a test set
// window.__testHooks before the page loaded.
import { clone } from './state.js';
import { formatNum } from './charts/palette.js';

export const testing = typeof window !== 'undefined' && !!window.__testHooks;

/** A poll interval in ms: the one a test set as window[name], else `ms`. */
export function pollMs(name, ms) { return (testing && window[name]) || ms; }

/** window[name] = value, for the tests only (the instructor page as window.__class). */
export function expose(name, value) { if (testing) window[name] = value; }

/** The playground as window.__playground: the render loop's figures (frames, lastFrame, modelId, redraws),
 * session, controller, events, views, and `state`, what the page shows. */
export function exposePlayground({ stats, session, controller, events, views }) {
  if (!testing) return;
  const pg = Object.assign(stats, { session, controller, events, views });
  Object.defineProperty(pg, 'state', { get: () => playgroundState(session, controller) });
  window.__playground = pg;
}

function playgroundState(s, controller) {
  return {
    config: clone(controller.value), modelId: s.id, playing: s.playing, busy: s.busy, frozen: !!controller.frozen,
    owned: s.owned, parent: s.model ? s.model.parent || null : null, away: !!s.away, reconnects: s.reconnects,
    step: s.frame ? s.frame.step : 0, diverged: !!(s.model && s.model.diverged),
    trainLoss: s.frame ? formatNum(s.frame.train_loss, 6) : null,
  };
}
