// Entry point: load the catalog, read the configuration from the URL, build the
// views, create the model and start the render loop.
import { api } from './api.js';
import { normalizeCatalog } from './catalog.js';
import { fromQuery } from './state.js';
import { Session } from './session.js';
import { App } from './app.js';
import { startRenderLoop } from './render.js';
import { ErrorView } from './views/errors.js';
import { ControlsView } from './views/controls.js';
import { DataView } from './views/data.js';
import { BuilderView } from './views/builder.js';
import { OptionsView } from './views/options.js';
import { OutputView } from './views/output.js';
import { NetworkView } from './views/network.js';
import { LayersView } from './views/layers.js';
import { TraceView } from './views/trace.js';
import { GradcheckView } from './views/gradcheck.js';
import { CheckerView } from './views/checker.js';
import { copyShareLink } from './views/share.js';
import { ClassStatusView } from './views/classroom.js';
import { UploadView } from './views/upload.js';
import { TransferView } from './views/transfer.js';
import { ForksView } from './views/forks.js';

async function main() {
  const errors = new ErrorView(document.getElementById('error-banner'));
  let raw = null;
  try { raw = await api.catalog(); } catch (err) { errors.message(`Catalog unavailable (${err.message}); using defaults.`); }
  const catalog = normalizeCatalog(raw);
  const search = location.search;   // syncURL rewrites it; start() needs the original (model=...)
  const cfg = fromQuery(search);
  const app = new App({ cfg, catalog, errors, session: null });
  app.session = new Session({
    onModel: (m, d, why) => app.onModel(m, d, why),
    onFrame: (f) => app.onFrame(f),
    onPlaying: (on) => app.controls.setPlaying(on),
    onError: (err) => app.fail(err),
  });
  app.controls = new ControlsView(app);
  app.trace = new TraceView(app);
  app.gradcheck = new GradcheckView(app);
  app.output = new OutputView(app);
  app.classStatus = new ClassStatusView(app);
  app.setViews([app.controls, new DataView(app), new UploadView(app), new BuilderView(app), new OptionsView(app),
    new NetworkView(app), app.output, new ForksView(app), new TransferView(app), new LayersView(app), app.trace,
    { setModel: () => app.gradcheck.clear() }, new CheckerView(app)]);
  copyShareLink(document.getElementById('copy-link'), document.getElementById('share-url'));
  app.renderer = startRenderLoop(app.session, app.views, () => app.state());
  if (window.__testHooks) window.__playground.app = app;
  app.syncURL();
  await app.classStatus.start();
  await app.start(search);
}

main().catch((err) => {
  console.error(err);
  const b = document.getElementById('error-banner');
  b.textContent = `Failed to start: ${err.message}`; b.hidden = false;
});
