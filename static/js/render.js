// Render loop: one redraw per animation frame at most, always from the latest frame
// (messages are never queued for drawing). Its figures (`stats`) are what the browser tests read.
const MAX_TIMESTAMPS = 5000;

export function startRenderLoop(session, views) {
  const stats = { frames: [], lastFrame: null, modelId: null, redraws: 0 };
  let forced = false;
  const tick = () => {
    if (session.dirty || forced) {
      session.dirty = false; forced = false;
      const frame = session.frame;
      for (const v of views) {
        try { v.render?.(frame); } catch (err) { console.error('render failed', v.constructor.name, err); }
      }
      stats.frames.push(performance.now());
      if (stats.frames.length > MAX_TIMESTAMPS) stats.frames.splice(0, stats.frames.length - MAX_TIMESTAMPS);
      stats.lastFrame = frame; stats.modelId = session.id; stats.redraws += 1;
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  return { stats, invalidate() { forced = true; } };
}
