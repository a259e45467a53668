// The banner while the stream's server is away (a restart, a dead replica): the session tries again
// with backoff and plays on by itself, so the student only needs to know that it is waiting.
export class ConnectionView {
  constructor({ events }) {
    this.box = document.getElementById('connection-banner');
    events.on('connection', (away) => this.show(away));
  }

  show(away) {
    if (away) this.box.textContent = 'Lost the connection to the server; reconnecting… Your network keeps its saved steps, and training goes on once it is back.';
    this.box.hidden = !away;
  }
}
