// The address bar and the share link: the page URL names the configuration and the open model (a reload
// reopens it); the share link names the configuration only (a model can only be changed with its token).
import { shareURL, toQuery } from '../state.js';

const $ = (id) => document.getElementById(id);

export class ShareView {
  constructor({ events }) {
    events.on('url', (cfg, modelId) => this.show(cfg, modelId));
    copyShareLink($('copy-link'), $('share-url'));
    // a same-document address change cancels a navigation in progress (a footer link clicked while
    // the model loads): while the page is leaving, its address is not ours to write. A page still here a
    // second later was not left (a download, say)
    this.leaving = false;
    window.addEventListener('beforeunload', () => {
      this.leaving = true;
      setTimeout(() => { this.leaving = false; }, 1000);
    });
  }

  show(cfg, modelId) {
    if (!this.leaving) history.replaceState(null, '', `?${toQuery(cfg, modelId)}`);
    const url = shareURL(cfg);
    $('share-link').href = url;
    $('share-url').value = url;
  }
}

/** "Copy" button for the share link. */
export function copyShareLink(button, input) {
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(input.value);
    } catch (e) {
      input.select(); document.execCommand('copy');
    }
    const old = button.textContent;
    button.textContent = 'Copied';
    setTimeout(() => { button.textContent = old; }, 1200);
  });
}
