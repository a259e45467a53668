// The address bar and the share link: the page URL names the configuration and the open model (a reload
// reopens it); the share link names the configuration only (a model can only be changed with its token).
import { shareURL, toQuery } from '../state.js';

const $ = (id) => document.getElementById(id);

export class ShareView {
  constructor({ events }) {
    events.on('url', (cfg, modelId) => this.show(cfg, modelId));
    copyShareLink($('copy-link'), $('share-url'));
  }

  show(cfg, modelId) {
    history.replaceState(null, '', `?${toQuery(cfg, modelId)}`);
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
