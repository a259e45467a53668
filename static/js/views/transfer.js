// "This model" actions: fork (POST /fork, then continue on the fork), download the model
// (GET /export?format=json as a file), upload one (POST /models/import: a new id and token),
// and the link to the model as a standalone NumPy script (export?format=numpy).
import { api, formatDetail } from '../api.js';

const $ = (id) => document.getElementById(id);

/** Save a Blob as a file through a temporary object URL. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url; a.download = name; a.hidden = true;
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export class TransferView {
  constructor({ session, controller, events }) {
    this.session = session; this.controller = controller;
    events.on('model', (model, data, why) => this.setModel(model, data, why));
    $('fork').addEventListener('click', () => this.fork());
    $('download-model').addEventListener('click', () => this.download());
    $('upload-model-button').addEventListener('click', () => $('upload-model').click());
    $('upload-model').addEventListener('change', (e) => { const f = e.target.files[0]; e.target.value = ''; if (f) this.upload(f); });
  }

  setModel(model, data, why) {
    if (why !== 'fork' && why !== 'import') this._status('');
    $('export-numpy').href = `/api/models/${encodeURIComponent(model.id)}/export?format=numpy`;
    $('export-numpy').setAttribute('download', `backprop_model_step${model.step}.py`);
  }

  render(frame) {
    if (frame && frame.step !== this.step) {
      this.step = frame.step;
      $('export-numpy').setAttribute('download', `backprop_model_step${frame.step}.py`);
    }
  }

  _status(text, error = false) {
    const s = $('transfer-status'); const e = $('upload-model-error');
    s.textContent = error ? '' : text || '';
    e.textContent = error ? text : ''; e.hidden = !error;
  }

  async fork() {
    this._status('');
    const { session, controller } = this;
    const from = session.frame ? session.frame.step : 0;
    const ok = await controller.switchTo(() => session.fork(), 'Fork: ');
    if (ok) this._status(`Forked at step ${from}. This is the fork; the original's curve stays on the loss chart.`);
  }

  async download() {
    this._status('');
    const { session } = this;
    if (!session.id) return;
    if (session.playing) session.pause();
    const button = $('download-model');
    button.disabled = true;
    try {
      await new Promise((r) => setTimeout(r, session.stream ? 150 : 0));   // let the pause be saved
      const { blob } = await api.exportModel(session.id, 'json');
      saveBlob(blob, `backprop_model_step${session.model.step}.json`);
      this._status('Downloaded. Upload the file here (or on another computer) to continue training.');
    } catch (err) {
      this._status(`Download failed: ${err.message}`, true);
    } finally {
      button.disabled = false;
    }
  }

  async upload(file) {
    this._status('');
    const binary = /\.npz$/i.test(file.name);
    const body = binary ? await file.arrayBuffer() : await file.text();
    const { session, controller } = this;
    let done = false;
    await controller.switchTo(async () => {
      let model;
      try {
        model = await api.importModel(body);
      } catch (err) {
        this._status(`Cannot import ${file.name}: ${err.detail !== undefined ? formatDetail(Array.isArray(err.detail)
          ? err.detail.map((d) => ({ ...d, loc: [] })) : err.detail) : err.message}`, true);
        return;
      }
      await session.adopt(model, 'import');
      done = true;
    }, 'Upload: ');
    if (done) this._status(`Loaded ${file.name} at step ${session.model.step}.`);
  }
}
