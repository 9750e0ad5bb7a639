// The well-behaved client: each VU caches its consumer's token until
// REFRESH_AT (default 0.9) of its expires_in has passed, and spends its
// iterations calling the protected API (API_URL, default TARGET/healthz as a
// stand-in) with it. Token requests are a tiny fraction of the calls.
//
//   k6 run -e TARGET=http://127.0.0.1:8080 -e CREDENTIALS=$PWD/creds.json \
//          -e VUS=50 -e DURATION=1m loadtest/k6/well-behaved.js
//
// Environment: see lib.js, plus API_URL, REFRESH_AT, PAUSE (seconds between
// calls, default 0), MAX_FETCH_RATE (threshold: fraction of iterations that
// fetched a token, default 0.01). CONSUMERS defaults to 1.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter, Rate } from 'k6/metrics';
import { consumers, requestToken, checkToken, tokenOf, target, vus, duration, envFloat, p99ms, maxErrorRate, trendStats } from './lib.js';

const creds = consumers(1);
const apiURL = __ENV.API_URL || target + '/healthz';
const refreshAt = envFloat('REFRESH_AT', 0.9);
const pause = envFloat('PAUSE', 0);
const maxFetchRate = envFloat('MAX_FETCH_RATE', 0.01);

const tokenFetches = new Counter('token_fetches');
const fetchedThisIteration = new Rate('token_fetch_ratio');

export const options = {
  vus,
  duration,
  summaryTrendStats: trendStats,
  thresholds: {
    http_req_failed: [`rate<${maxErrorRate}`],
    token_fetch_ratio: [`rate<${maxFetchRate}`],
    'http_req_duration{name:api}': [`p(99)<${p99ms}`],
  },
};

// Each VU has its own JavaScript runtime: this is a per-VU token cache.
let cached = null; // {token, refreshAt (ms since epoch)}

export default function () {
  const c = creds[(__VU - 1) % creds.length];
  const now = Date.now();
  const due = cached === null || now >= cached.refreshAt;
  fetchedThisIteration.add(due);
  if (due) {
    const res = requestToken(c);
    tokenFetches.add(1);
    checkToken(res);
    const t = tokenOf(res);
    cached = t === null ? null : { token: t.token, refreshAt: now + t.expiresIn * 1000 * refreshAt };
  }
  if (cached !== null) {
    const res = http.get(apiURL, { headers: { Authorization: 'Bearer ' + cached.token }, tags: { name: 'api' } });
    check(res, { 'api: status 2xx': (r) => r.status >= 200 && r.status < 300 });
  }
  if (pause > 0) sleep(pause);
}
