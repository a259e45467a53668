// Entry point. The session and the model controller are built first; every view then takes the same
// context ({session, controller, events, catalog, errors}, the checker also the trace) and subscribes to
// the events it shows. Nothing holds the whole page. Then the render loop starts and the first model is made.
import { api } from './api.js';
import { normalizeCatalog } from './catalog.js';
import { createEvents } from './events.js';
import { fromQuery } from './state.js';
import { Session } from './session.js';
import { ModelController } from './controller.js';
import { exposePlayground } from './testhooks.js';
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
import { ShareView } from './views/share.js';
import { BannersView } from './views/banners.js';
import { ClassStatusView } from './views/classroom.js';
import { BudgetView } from './views/budget.js';
import { UploadView } from './views/upload.js';
import { TransferView } from './views/transfer.js';
import { ForksView } from './views/forks.js';
import { ConnectionView } from './views/connection.js';

async function main() {
  const errors = new ErrorView(document.getElementById('error-banner'));
  // the option lists and the defaults are the server's: without them there is nothing to configure
  const catalog = normalizeCatalog(await api.catalog());
  const events = createEvents();
  const session = new Session({
    onModel: (model, data, why) => events.emit('model', model, data, why),
    onFrame: (frame) => events.emit('frame', frame),
    onPlaying: (on) => events.emit('playing', on),
    onError: (err) => events.emit('error', err),
    onConnection: (away) => events.emit('connection', away),
  });
  const search = location.search;   // syncURL rewrites it; start() needs the original (model=...)
  const controller = new ModelController({ cfg: fromQuery(search, catalog), catalog, session, events, errors });
  const ctx = { session, controller, events, catalog, errors };

  const controls = new ControlsView(ctx);
  const output = new OutputView(ctx);
  const network = new NetworkView(ctx);
  const layers = new LayersView(ctx);
  const transfer = new TransferView(ctx);
  new DataView(ctx); new UploadView(ctx); new BuilderView(ctx); new OptionsView(ctx); new ForksView(ctx);
  new ConnectionView(ctx); new BannersView(ctx); new ShareView(ctx);
  new BudgetView(ctx);   // before the class status: it hears the first status
  const classStatus = new ClassStatusView(ctx);

  // the checker marks its diagnosis in the trace
  const trace = new TraceView(ctx);
  new GradcheckView(ctx); new CheckerView({ ...ctx, trace });

  const renderer = startRenderLoop(session, [controls, output, network, layers, transfer]);
  events.on('redraw', () => renderer.invalidate());
  exposePlayground({ stats: renderer.stats, session, controller, events, views: { controls, output, network, layers, trace } });
  controller.syncURL();
  await classStatus.start();
  await controller.start(search);
}

main().catch((err) => {
  console.error(err);
  const b = document.getElementById('error-banner');
  b.textContent = `Failed to start: ${err.message}`; b.hidden = false;
});
