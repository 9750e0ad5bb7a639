// k6harness runs one of tokengw's k6 scripts under Node with k6's modules
// stubbed, so that a Go test (TestK6Scripts) can check them without k6:
// the script must parse, build valid options and thresholds from the
// environment, and make the requests its scenario promises when its
// functions are called against canned responses.
//
//   node k6harness.mjs K6_DIR WORK_DIR SCRIPT CASE_JSON
//
// CASE_JSON: {"env": {...}, "iterations": N, "respond": "ok"|"limit-first",
//             "expect": {"vus": N, "scenarios": [...], "tokenRequests": N, "metrics": {...}}}
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [k6dir, work, script, caseJSON] = process.argv.slice(2);
const tc = JSON.parse(caseJSON);

function die(msg) {
  console.error(`${script}: ${msg}`);
  process.exit(1);
}

// Copy the scripts with k6 imports pointed at the stubs.
fs.mkdirSync(path.join(work, '__k6'), { recursive: true });
fs.writeFileSync(path.join(work, 'package.json'), '{"type":"module"}\n');
for (const f of fs.readdirSync(k6dir)) {
  if (!f.endsWith('.js')) continue;
  const src = fs.readFileSync(path.join(k6dir, f), 'utf8')
    .replace(/from\s+'k6'/g, "from './__k6/k6.js'")
    .replace(/from\s+'k6\/([a-z]+)'/g, "from './__k6/$1.js'");
  fs.writeFileSync(path.join(work, f), src);
}
const stubs = {
  'k6.js': `
export function check(val, sets) {
  let ok = true;
  for (const [name, fn] of Object.entries(sets)) {
    const r = !!fn(val);
    globalThis.__k6.checks.push({ name, ok: r });
    ok = ok && r;
  }
  return ok;
}
export function sleep() {}
export function fail(msg) { throw new Error(msg); }
export function group(name, fn) { return fn(); }
export default { check, sleep, fail, group };
`,
  'http.js': `
function request(method, url, body, params) {
  const req = { method, url, body, params: params || {} };
  globalThis.__k6.requests.push(req);
  return globalThis.__k6.respond(req);
}
export function post(url, body, params) { return request('POST', url, body, params); }
export function get(url, params) { return request('GET', url, null, params); }
export default { post, get, request };
`,
  'encoding.js': `
export function b64encode(s) { return Buffer.from(s, 'utf8').toString('base64'); }
export function b64decode(s) { return Buffer.from(s, 'base64').toString('utf8'); }
export default { b64encode, b64decode };
`,
  'metrics.js': `
class Metric {
  constructor(name, type) { this.name = name; this.type = type; globalThis.__k6.metrics[name] = { type, values: [] }; }
  add(v) { globalThis.__k6.metrics[this.name].values.push(v); }
}
export class Counter extends Metric { constructor(n) { super(n, 'counter'); } }
export class Rate extends Metric { constructor(n) { super(n, 'rate'); } }
export class Trend extends Metric { constructor(n) { super(n, 'trend'); } }
export class Gauge extends Metric { constructor(n) { super(n, 'gauge'); } }
export default { Counter, Rate, Trend, Gauge };
`,
  'execution.js': `export default { vu: { idInTest: 1 }, scenario: { name: 'default', iterationInTest: 0 } };\n`,
};
for (const [f, src] of Object.entries(stubs)) fs.writeFileSync(path.join(work, '__k6', f), src);

// Canned responses: a token per consumer, or 429 for the first consumer.
let firstID = null;
function consumerOf(req) {
  const h = (req.params.headers || {}).Authorization || '';
  if (!h.startsWith('Basic ')) return null;
  const [id] = Buffer.from(h.slice(6), 'base64').toString('utf8').split(':');
  return decodeURIComponent(id.replace(/\+/g, ' '));
}
function respond(req) {
  const headers = { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' };
  if (req.method === 'GET') return { status: 200, body: 'ok\n', headers };
  const id = consumerOf(req);
  if (id === null) return { status: 401, body: '{"error":"invalid_client"}', headers };
  if (firstID === null) firstID = id;
  if (tc.respond === 'limit-first' && id === firstID) {
    return { status: 429, body: '{"error":"rate_limited"}', headers: { ...headers, 'Retry-After': '1' } };
  }
  return { status: 200, body: JSON.stringify({ access_token: 'tok-' + id, token_type: 'Bearer', expires_in: 3600 }), headers };
}

globalThis.__k6 = { requests: [], checks: [], metrics: {}, respond };
globalThis.__ENV = tc.env || {};
globalThis.__VU = 1;
globalThis.__ITER = 0;
globalThis.open = (p) => fs.readFileSync(path.isAbsolute(p) ? p : path.join(work, p), 'utf8');

const mod = await import(pathToFileURL(path.join(work, script)).href);
const o = mod.options;
if (!o || typeof o !== 'object') die('no exported options');

// Thresholds: k6's grammar, on metrics that exist.
const builtin = new Set(['http_req_failed', 'http_req_duration', 'http_reqs', 'checks', 'iterations', 'iteration_duration',
  'http_req_waiting', 'http_req_connecting', 'http_req_sending', 'http_req_receiving', 'data_sent', 'data_received']);
const expr = /^(avg|min|max|med|count|rate|value|p\(\d+(\.\d+)?\))\s*(<|<=|>|>=|==|===|!=)\s*-?\d+(\.\d+)?$/;
for (const [metric, list] of Object.entries(o.thresholds || {})) {
  const m = /^([a-z_][a-z0-9_]*)(\{[a-z_]+:[a-z0-9_-]+\})?$/.exec(metric);
  if (!m) die(`threshold on a malformed metric: ${metric}`);
  if (!builtin.has(m[1]) && !(m[1] in globalThis.__k6.metrics)) die(`threshold on an undefined metric: ${m[1]}`);
  if (!Array.isArray(list) || list.length === 0) die(`thresholds of ${metric}: want a non-empty array`);
  for (const t of list) if (typeof t !== 'string' || !expr.test(t)) die(`threshold ${metric}: bad expression ${JSON.stringify(t)}`);
}
if (Object.keys(o.thresholds || {}).length === 0) die('no thresholds');

// Run the scenario functions.
const want = tc.expect || {};
const execs = [];
if (o.scenarios) {
  for (const [name, sc] of Object.entries(o.scenarios)) {
    const fn = mod[sc.exec || 'default'];
    if (typeof fn !== 'function') die(`scenario ${name}: exec ${sc.exec} is not an exported function`);
    if (!sc.executor) die(`scenario ${name}: no executor`);
    execs.push(fn);
  }
  if (want.scenarios && JSON.stringify(Object.keys(o.scenarios)) !== JSON.stringify(want.scenarios)) {
    die(`scenarios ${Object.keys(o.scenarios)}, want ${want.scenarios}`);
  }
} else {
  if (typeof mod.default !== 'function') die('no default function');
  execs.push(mod.default);
  if (want.vus !== undefined && o.vus !== want.vus) die(`options.vus = ${o.vus}, want ${want.vus}`);
  if (want.duration !== undefined && o.duration !== want.duration) die(`options.duration = ${o.duration}, want ${want.duration}`);
}
for (let i = 0; i < (tc.iterations || 3); i++) {
  globalThis.__ITER = i;
  for (const fn of execs) fn();
}

const reqs = globalThis.__k6.requests;
const tokenReqs = reqs.filter((r) => r.method === 'POST');
for (const r of tokenReqs) {
  if (r.body.split('&')[0] !== 'grant_type=client_credentials') die(`token request body ${r.body}`);
  if ((r.params.headers || {})['Content-Type'] !== 'application/x-www-form-urlencoded') die('token request without the form content type');
  if (consumerOf(r) === null) die('token request without Basic credentials');
  if (want.url && r.url !== want.url) die(`token request to ${r.url}, want ${want.url}`);
}
if (want.tokenRequests !== undefined && tokenReqs.length !== want.tokenRequests) {
  die(`${tokenReqs.length} token requests, want ${want.tokenRequests}`);
}
if (want.consumers !== undefined) {
  const ids = new Set(tokenReqs.map(consumerOf));
  if (ids.size !== want.consumers) die(`${ids.size} distinct consumers, want ${want.consumers}`);
}
const failed = globalThis.__k6.checks.filter((c) => !c.ok).map((c) => c.name);
if (failed.length > 0) die(`checks failed: ${[...new Set(failed)].join(', ')}`);
for (const [name, w] of Object.entries(want.metrics || {})) {
  const m = globalThis.__k6.metrics[name];
  if (!m) die(`metric ${name} never defined`);
  const vals = m.values.map(Number);
  const got = m.type === 'rate' ? vals.reduce((a, b) => a + b, 0) / Math.max(1, vals.length) : vals.reduce((a, b) => a + b, 0);
  if (Math.abs(got - w) > 1e-9) die(`metric ${name} = ${got}, want ${w}`);
}
console.log(`ok ${script}: ${reqs.length} requests, ${globalThis.__k6.checks.length} checks`);
