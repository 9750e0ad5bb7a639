// Many consumers, each calling like the abusive client: VU n acts for
// consumer (n-1) mod CONSUMERS (default 50; the credentials file must hold
// that many: `go run ./loadtest clients --count 50` makes them). With
// reuse on, every consumer gets its own token, and the same one call after
// call until its reuse window ends: token_reused measures that.
//
//   k6 run -e TARGET=http://127.0.0.1:8080 -e CREDENTIALS=$PWD/creds.json \
//          -e CONSUMERS=50 -e VUS=200 -e DURATION=2m loadtest/k6/many-consumers.js
//
// Environment: see lib.js, plus REUSE: on (default; threshold: token_reused
// > 99%), off (< 1%: every call mints) or any (no threshold).
import { Rate } from 'k6/metrics';
import { consumers, requestToken, checkToken, tokenOf, vus, duration, p99ms, maxErrorRate, trendStats } from './lib.js';

const creds = consumers(50);
const reuse = (__ENV.REUSE || 'on').toLowerCase();
if (!['on', 'off', 'any'].includes(reuse)) throw new Error(`REUSE: want on, off or any, got ${reuse}`);

const tokenReused = new Rate('token_reused');

const thresholds = {
  http_req_failed: [`rate<${maxErrorRate}`],
  'http_req_duration{name:token}': [`p(99)<${p99ms}`],
  checks: ['rate>0.99'],
};
if (reuse === 'on') thresholds.token_reused = ['rate>0.99'];
if (reuse === 'off') thresholds.token_reused = ['rate<0.01'];

export const options = { vus, duration, summaryTrendStats: trendStats, thresholds };

let last = null; // this VU's previous token

export default function () {
  const c = creds[(__VU - 1) % creds.length];
  const res = requestToken(c);
  checkToken(res);
  const t = tokenOf(res);
  if (t !== null) {
    if (last !== null) tokenReused.add(t.token === last);
    last = t.token;
  }
}
