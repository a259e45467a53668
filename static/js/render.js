// Render loop: one redraw per animation frame at most, always from the latest frame
// (messages are never queued for drawing). Exposes window.__playground for tests.
const MAX_TIMESTAMPS = 5000;

export function startRenderLoop(session, views, getState) {
  const pg = {
    frames: [], lastFrame: null, modelId: null, redraws: 0,
    get state() { return getState(); },
  };
  window.__playground = pg;
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
