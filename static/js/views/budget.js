// The class assignment's step budget on the student's page: while the current model is on the
// assignment's task (the pushed preset: dataset, features, loss), the session trains no step past
// the budget (session.budget) and a message says the model is ranked at that step. Without it a
// student's Play at "auto" speed passes the budget within seconds and drops off the leaderboard.

const $ = (id) => document.getElementById(id);

/** A model's dataset as the server's assignment names it (app/service/assignment.dataset_of). */
export function datasetOf(spec) {
  const d = (spec && spec.data) || {};
  if (d.dataset) return d.dataset;
  const did = (d.info || {}).dataset_id || d.dataset_id;
  return did ? `csv ${did}` : 'own data';
}

/** Whether a model's spec is on the task, the step aside (mirrors app/service/assignment.mismatch). */
export function onTask(task, spec) {
  if (!task || !spec || datasetOf(spec) !== task.dataset) return false;
  if (task.features) {
    const used = [...(((spec.data || {}).features) || [])].sort();
    const want = [...task.features].sort();
    if (used.length !== want.length || used.some((f, i) => f !== want[i])) return false;
  }
  return !(task.loss && spec.loss !== task.loss);
}

export function budgetMessage(n) {
  return `The assignment's budget of ${n} steps is reached: this model is ranked at step ${n}. Reset to start again.`;
}

export class BudgetView {
  constructor({ session, events }) {
    this.session = session; this.task = null;
    events.on('class-status', (status) => { this.task = (status && status.enabled && status.assignment) || null; this.update(); });
    events.on('model', () => this.update());
    events.on('frame', () => this.show());
  }

  /** Set the session's budget from the task and the current model, then the message. */
  update() {
    const s = this.session;
    const budget = this.task && this.task.step_budget && s.model && onTask(this.task, s.model.spec)
      ? this.task.step_budget : null;
    s.setBudget(budget);
    this.show();
  }

  show() {
    const s = this.session; const el = $('budget-reached');
    const reached = s.budget !== null && !!s.model && s.model.step >= s.budget;
    if (reached && el.textContent !== budgetMessage(s.budget)) el.textContent = budgetMessage(s.budget);
    el.hidden = !reached;
  }
}
