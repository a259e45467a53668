// The banners of the model's state: training frozen by the instructor, and a refused diverging step.
const $ = (id) => document.getElementById(id);

/**
 * The divergence banner. The refused step is never taken, so the network stays at `step` (what the
 * step counter shows) and `divergedAt` is step + 1: both numbers are named for what they are.
 */
export function divergenceText(step, divergedAt) {
  const refused = divergedAt ?? step + 1;
  return `Training stopped at step ${step}: step ${refused} made the loss or the weights non-finite, so it was ` +
    'refused and the network keeps its weights. Try a smaller learning rate, then press Reset.';
}

export class BannersView {
  constructor({ events }) {
    events.on('frozen', (on) => this.frozen(on));
    events.on('diverged', (on, frame) => this.diverged(frame));
  }

  frozen(on) {
    const box = $('frozen-banner');
    box.hidden = !on;
    if (on) box.textContent = 'Training is frozen by your teacher. You can look around; Play works again when they unfreeze.';
  }

  /** frame: the diverged frame, or null to hide. */
  diverged(frame) {
    const box = $('divergence-message');
    if (frame) {
      const text = divergenceText(frame.step, frame.diverged_at);
      if (box.textContent !== text) box.textContent = text;
    }
    box.hidden = !frame;
  }
}
