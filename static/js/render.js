// Render loop: one redraw per animation frame at most, always from the latest frame
// (messages are never queued for drawing). Exposes window.__playground when the tests set window.__testHooks.
const MAX_TIMESTAMPS = 5000;

export function startRenderLoop(session, views, getState) {
  const pg = {
    frames: [], lastFrame: null, modelId: null, redraws: 0, session,
    get state() { return getState(); },
  };
  if (window.__testHooks) window.__playground = pg;   // browser tests only
  let forced = false;
  const tick = () => {
    if (session.dirty || forced) {
      session.dirty = false; forced = false;
      const frame = session.frame;
      for (const v of views) {
        try { v.render?.(frame); } catch (err) { console.error('render failed', v.constructor.name, err); }
      }
      pg.frames.push(performance.now());
      if (pg.frames.length > MAX_TIMESTAMPS) pg.frames.splice(0, pg.frames.length - MAX_TIMESTAMPS);
      pg.lastFrame = frame; pg.modelId = session.id; pg.redraws += 1;
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  return { invalidate() { forced = true; } };
}
