// The abusive client: a new client_credentials token request on every call,
// as fast as VUS virtual users go (no sleep). Against tokengw with reuse on,
// every response carries the consumer's live token; with reuse off, every
// call mints and persists one.
//
//   k6 run -e TARGET=http://127.0.0.1:8080 -e CREDENTIALS=$PWD/creds.json \
//          -e CONSUMERS=1 -e VUS=200 -e DURATION=2m loadtest/k6/abusive.js
//
// Environment: see lib.js; CONSUMERS defaults to 1.
import { consumers, requestToken, checkToken, vus, duration, p99ms, maxErrorRate, trendStats } from './lib.js';

const creds = consumers(1);

export const options = {
  vus,
  duration,
  summaryTrendStats: trendStats,
  thresholds: {
    http_req_failed: [`rate<${maxErrorRate}`],
    'http_req_duration{name:token}': [`p(99)<${p99ms}`],
    checks: ['rate>0.99'],
  },
};

export default function () {
  // Round-robin over the consumers by VU, like the Go runner's workers.
  const c = creds[(__VU - 1 + __ITER) % creds.length];
  checkToken(requestToken(c));
}
