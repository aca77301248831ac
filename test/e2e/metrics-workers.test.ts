import assert from 'node:assert/strict';
import http from 'node:http';
import { exitOf, startServer, useProcessWorld } from '../helpers/process.ts';

/**
 * /metrics with WORKERS=2 (server.ts, app/lib/metrics-cluster.ts) as real processes: whichever worker
 * answers a scrape, the counters are the sum over both workers, and the database gauges appear once.
 */

const TOKEN = 'cluster-metrics-token-0123456789abcdef0123456789';

/** A GET on a connection of its own (no keep-alive: the cluster hands each new connection to the next worker). */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false, headers: { connection: 'close', ...headers } }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      })
      .on('error', reject);
  });
}

const sample = (text: string, line: RegExp) => {
  const m = text.split('\n').filter((l) => line.test(l));
  assert.equal(m.length, 1, `one line matching ${line}:\n${m.join('\n')}`);
  return Number(m[0]!.split(/\s+/).pop());
};

describe('/metrics with WORKERS=2 (node:cluster) as real processes', function () {
  this.timeout(120_000);
  const world = useProcessWorld('metrics-workers', { migrate: false });

  it('sums the counters of both workers, whichever answers the scrape; the seats gauge once', async () => {
    const { child, base } = await startServer(world, { WORKERS: '2', METRICS_TOKEN: TOKEN }, { timeoutMs: 60_000 });
    try {
      const workers = new Set<number>();
      const n = 12;
      for (let i = 0; i < n; i++) {
        const r = await get(`${base}/readyz`);
        assert.equal(r.status, 200);
        workers.add(JSON.parse(r.text).worker);
      }
      assert.deepEqual([...workers].sort(), [1, 2], 'both workers answered');

      assert.equal((await get(`${base}/metrics`)).status, 401);
      for (let i = 0; i < 4; i++) {
        const scrape = await get(`${base}/metrics`, { authorization: `Bearer ${TOKEN}` });
        assert.equal(scrape.status, 200, scrape.text);
        assert.equal(
          sample(scrape.text, /^portico_http_requests_total\{route="\/readyz",method="GET",status_class="2xx"\} /),
          n,
          'the /readyz requests of both workers',
        );
        assert.equal(scrape.text.match(/^# HELP portico_http_requests_total /gm)?.length, 1);
        assert.equal(sample(scrape.text, /^portico_seats_in_use /), 0);
        assert.equal(scrape.text.match(/^# HELP portico_seats_in_use /gm)?.length, 1, 'the database gauges once');
        assert.ok(sample(scrape.text, /^portico_db_pool_max_connections /) >= 2, 'the pools of both workers');
      }
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exitOf(child), 0, child.output());
  });
});
