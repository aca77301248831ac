import cluster from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

/**
 * /metrics with WORKERS > 1 (server.ts; docs/decisions.md, "Metrics"): each worker counts in its own
 * registry, and a scrape lands on any one of them. That worker asks the primary over the cluster's IPC
 * channel; the primary asks every worker for its registry (prom-client's AggregatorRegistry) and
 * answers with the sum (counters and histograms summed; gauges by their aggregator: pool connections
 * and memory summed, event-loop lag averaged).
 */

const REQUEST = 'portico:metrics';
const RESULT = 'portico:metrics-result';
/** prom-client's primary gives up on a silent worker after 5 s; the asking worker waits a little longer. */
const TIMEOUT_MS = 8_000;

interface ResultMessage {
  type: typeof RESULT;
  id: number;
  text?: string;
  error?: string;
}

/** In a worker: hands `registry` to prom-client's worker listener; returns how to ask the primary for the sum. */
export function workerAggregate(registry: Registry): () => Promise<string> {
  new AggregatorRegistry(); // installs this worker's answer to the primary's request
  AggregatorRegistry.setRegistries([registry]);
  let next = 0;
  const waiting = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void }>();
  process.on('message', (m: ResultMessage) => {
    if (m?.type !== RESULT) return;
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    if (typeof m.text === 'string') w.resolve(m.text);
    else w.reject(new Error(`cluster metrics: ${m.error ?? 'no answer'}`));
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error('cluster metrics: the primary did not answer'));
      }, TIMEOUT_MS);
      timer.unref();
      waiting.set(id, {
        resolve: (text) => {
          clearTimeout(timer);
          resolve(text);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      process.send?.({ type: REQUEST, id });
    });
}

/** In the primary: answers each worker's request with the sum over all workers. */
export function serveClusterMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, m: { type?: string; id?: unknown }) => {
    if (m?.type !== REQUEST || typeof m.id !== 'number') return;
    const id = m.id;
    aggregator.clusterMetrics().then(
      (text) => worker.isConnected() && worker.send({ type: RESULT, id, text }),
      (err: Error) => worker.isConnected() && worker.send({ type: RESULT, id, error: err.message }),
    );
  });
}
