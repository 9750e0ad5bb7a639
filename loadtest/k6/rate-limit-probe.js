// Rate-limit probe: consumer 1 asks for tokens at ABUSE_RATE per second
// (default 50) while the other consumers call at BYSTANDER_RATE in total
// (default 2/s). Run tokengw with a per-client limit below ABUSE_RATE, e.g.
//   TOKENGW_LIMITS__PER_CLIENT__RATE=10 TOKENGW_LIMITS__PER_CLIENT__BURST=20
// The thresholds pass when the abuser gets 429 with Retry-After and no
// bystander is ever limited (one consumer's abuse costs the others nothing).
//
//   k6 run -e TARGET=http://127.0.0.1:8080 -e CREDENTIALS=$PWD/creds.json \
//          -e CONSUMERS=3 -e DURATION=30s loadtest/k6/rate-limit-probe.js
//
// Environment: see lib.js (VUS is unused: arrival rates decide), plus
// ABUSE_RATE, BYSTANDER_RATE. CONSUMERS defaults to 3 (at least 2).
import { check } from 'k6';
import { Counter, Rate } from 'k6/metrics';
import { consumers, requestToken, tokenOf, duration, envInt, trendStats } from './lib.js';

const creds = consumers(3);
if (creds.length < 2) throw new Error('the rate-limit probe needs at least 2 consumers');
const abuseRate = envInt('ABUSE_RATE', 50);
const bystanderRate = envInt('BYSTANDER_RATE', 2);

const limited = new Rate('rate_limited');
const retryAfter = new Rate('retry_after_present');
const unexpected = new Counter('unexpected_status');

export const options = {
  summaryTrendStats: trendStats,
  scenarios: {
    abuser: {
      executor: 'constant-arrival-rate', exec: 'abuser', rate: abuseRate, timeUnit: '1s', duration,
      preAllocatedVUs: Math.max(2, Math.ceil(abuseRate / 10)), maxVUs: Math.max(10, abuseRate),
    },
    bystander: {
      executor: 'constant-arrival-rate', exec: 'bystander', rate: bystanderRate, timeUnit: '1s', duration,
      preAllocatedVUs: 2, maxVUs: Math.max(4, bystanderRate * 2),
    },
  },
  thresholds: {
    'rate_limited{scenario:abuser}': ['rate>0'],
    'rate_limited{scenario:bystander}': ['rate==0'],
    'retry_after_present{scenario:abuser}': ['rate==1'],
    unexpected_status: ['count==0'],
  },
};

function probe(c) {
  const res = requestToken(c);
  const is429 = res.status === 429;
  limited.add(is429);
  if (is429) {
    retryAfter.add((res.headers['Retry-After'] || '') !== '');
    check(res, { '429: error rate_limited or similar JSON': (r) => (r.body || '').includes('"error"') });
  } else if (tokenOf(res) === null) {
    unexpected.add(1);
  }
}

export function abuser() {
  probe(creds[0]);
}

let next = 0;
export function bystander() {
  probe(creds[1 + (next++ % (creds.length - 1))]);
}
