// Shared helpers of tokengw's k6 scripts: options from the environment,
// credentials, and the client_credentials token request.
//
// Environment (every script):
//   TARGET        base URL of the token endpoint's server  (default http://127.0.0.1:8080)
//   TOKEN_PATH    token endpoint path                      (default /oauth2/token)
//   CREDENTIALS   credentials file: JSON [{"id","secret"}] or CSV "id,secret" rows;
//                 an absolute path is safest (k6 resolves relative paths against the script)
//   CLIENT_ID, CLIENT_SECRET  one consumer when CREDENTIALS is not set
//                 (default demo / demo-secret, the demo client of `make run`)
//   CONSUMERS     how many consumers of the file to use    (default: per script)
//   VUS           virtual users (concurrent workers)       (default 50)
//   DURATION      test duration                            (default 30s)
//   SCOPE         scope parameter of token requests        (default none)
//   P99_MS        threshold: p99 of token requests, ms     (default 1000)
//   MAX_ERROR_RATE threshold: failed requests fraction     (default 0.01)
import http from 'k6/http';
import encoding from 'k6/encoding';
import { check } from 'k6';

export function envInt(name, dflt) {
  const v = __ENV[name];
  if (v === undefined || v === '') return dflt;
  const n = parseInt(v, 10);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}: want a non-negative integer, got ${v}`);
  return n;
}

export function envFloat(name, dflt) {
  const v = __ENV[name];
  if (v === undefined || v === '') return dflt;
  const n = parseFloat(v);
  if (!Number.isFinite(n)) throw new Error(`${name}: want a number, got ${v}`);
  return n;
}

export const target = (__ENV.TARGET || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const tokenURL = target + (__ENV.TOKEN_PATH || '/oauth2/token');
export const vus = envInt('VUS', 50);
export const duration = __ENV.DURATION || '30s';
export const p99ms = envFloat('P99_MS', 1000);
export const maxErrorRate = envFloat('MAX_ERROR_RATE', 0.01);

// parseCredentials reads the runner's credentials formats: a JSON array of
// {id, secret}, an object with such an array under "clients", or CSV rows
// "id,secret" with an optional header row and '#' comments.
export function parseCredentials(text) {
  const t = text.trim();
  let creds = [];
  if (t.startsWith('[')) {
    creds = JSON.parse(t);
  } else if (t.startsWith('{')) {
    creds = JSON.parse(t).clients || [];
  } else {
    for (const raw of t.split(/\r?\n/)) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      const [id, secret] = line.split(',').map((s) => s.trim());
      if (id.toLowerCase() === 'id' && (secret || '').toLowerCase() === 'secret') continue;
      creds.push({ id, secret });
    }
  }
  creds = creds.filter((c) => c && c.id && c.secret);
  if (creds.length === 0) throw new Error('no credentials');
  return creds;
}

// consumers returns the first n consumers (n = CONSUMERS, else dflt; 0 =
// all). Call it in the init context: it uses open().
export function consumers(dflt) {
  let creds;
  if (__ENV.CREDENTIALS) {
    creds = parseCredentials(open(__ENV.CREDENTIALS));
  } else {
    creds = [{ id: __ENV.CLIENT_ID || 'demo', secret: __ENV.CLIENT_SECRET || 'demo-secret' }];
  }
  const n = envInt('CONSUMERS', dflt);
  if (n > creds.length) throw new Error(`CONSUMERS=${n} but only ${creds.length} credentials`);
  return n > 0 ? creds.slice(0, n) : creds;
}

// formEncode is application/x-www-form-urlencoded encoding of one value.
export function formEncode(s) {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
    .replace(/%20/g, '+');
}

// basicAuth is client_secret_basic: the id and secret are form-encoded
// before they go into HTTP Basic (RFC 6749 §2.3.1).
export function basicAuth(c) {
  return 'Basic ' + encoding.b64encode(formEncode(c.id) + ':' + formEncode(c.secret));
}

const body = 'grant_type=client_credentials' + (__ENV.SCOPE ? '&scope=' + formEncode(__ENV.SCOPE) : '');

// requestToken makes one client_credentials token request for consumer c.
export function requestToken(c, tags) {
  return http.post(tokenURL, body, {
    headers: {
      Authorization: basicAuth(c),
      'Content-Type': 'application/x-www-form-urlencoded',
      Accept: 'application/json',
    },
    tags: Object.assign({ name: 'token' }, tags || {}),
  });
}

// tokenOf returns the access token and expires_in of a 200 response, or
// null.
export function tokenOf(res) {
  if (res.status !== 200) return null;
  try {
    const j = JSON.parse(res.body);
    if (typeof j.access_token !== 'string' || j.access_token === '') return null;
    return { token: j.access_token, expiresIn: Number(j.expires_in) || 0 };
  } catch (e) {
    return null;
  }
}

// checkToken records the standard checks of a token response.
export function checkToken(res) {
  return check(res, {
    'token: status 200': (r) => r.status === 200,
    'token: has access_token': (r) => tokenOf(r) !== null,
    'token: Cache-Control no-store': (r) => (r.headers['Cache-Control'] || '').includes('no-store'),
  });
}

export const trendStats = ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max', 'count'];
