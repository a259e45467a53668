// Every request of the pages goes through static/js/api.js (its token, error and JSON handling).
import test from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const JS = fileURLToPath(new URL('../../static/js/', import.meta.url));

function sources(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    return e.isDirectory() ? sources(path) : e.name.endsWith('.js') ? [path] : [];
  });
}

test('no module of static/js but api.js calls fetch', () => {
  const callers = sources(JS).filter((f) => relative(JS, f) !== 'api.js' && /\bfetch\s*\(/.test(readFileSync(f, 'utf8')));
  assert.deepEqual(callers.map((f) => relative(JS, f)), []);
});

test('the scan sees api.js, which does call fetch', () => {
  assert.match(readFileSync(join(JS, 'api.js'), 'utf8'), /\bfetch\s*\(/);
  assert.ok(sources(JS).length > 20);
});
