// The banner while the server is away (a restart, a dead replica; told by the stream or by a call that
// could not reach it): the session tries again with backoff, plays on by itself and the controller sends
// the changes made meanwhile, so the student only needs to know that it is waiting.
export class ConnectionView {
  constructor({ events }) {
    this.box = document.getElementById('connection-banner');
    events.on('connection', (away) => this.show(away));
  }

  show(away) {
    if (away) this.box.textContent = 'Lost the connection to the server; reconnecting… Your network keeps its saved steps; training goes on and your changes are applied once it is back.';
    this.box.hidden = !away;
  }
}
