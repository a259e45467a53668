// The body of GET /api/catalog as the server makes it (app/api/routes/meta.py, run by Python), so the
// page's modules are tested against what the server really sends, defaults included.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { parseJSON } from '../../static/js/api.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PRINT = 'import json; from app.config import Settings; from app.api.routes.meta import catalog; '
  + 'print(json.dumps(catalog(Settings())))';

export const serverCatalog = parseJSON(execFileSync(process.env.PYTHON || 'python', ['-c', PRINT], {
  cwd: ROOT, env: { ...process.env, PYTHONPATH: ROOT }, encoding: 'utf8', timeout: 60_000,
}));
