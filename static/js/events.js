// A small event emitter: the page's parts talk through named events instead of holding each other.
// Events: config (cfg), model (model, data, why), frame (frame), playing (on), diverged (on),
// frozen (on), error (err, context), redraw, overlays (curves), layer-hover (layer | null),
// trace-batch (modelId, batchSize), class-status (status), class-poll.

export function createEvents() {
  const handlers = new Map();
  return {
    /** Call fn(...args) on every emit(name, ...args), in the order of subscription; returns the unsubscribe. */
    on(name, fn) {
      if (!handlers.has(name)) handlers.set(name, []);
      handlers.get(name).push(fn);
      return () => { const list = handlers.get(name); list.splice(list.indexOf(fn) >>> 0, 1); };
    },
    emit(name, ...args) {
      for (const fn of [...(handlers.get(name) || [])]) fn(...args);
    },
  };
}
