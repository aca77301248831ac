import { galeraBurstRounds, galeraOneClientApiRounds, requireGalera, useGaleraProcesses } from '../helpers/galera.ts';

/**
 * The long rounds on a multi-primary Galera cluster (GALERA_URLS, see test/helpers/galera.ts; skipped
 * when unset): two server.ts processes on two nodes, every activation through the other node than its
 * browser's session.
 */
describe('Stress: Galera, two processes on two nodes', function () {
  this.timeout(900_000);
  requireGalera(this);
  const g = useGaleraProcesses();

  it('50 racing activations of a 5-seat license, exactly 5 granted and no server error — 20 rounds', async () => {
    const conflicts = await galeraBurstRounds(g, 20);
    console.log(`      (conflicts the cluster resolved in 20 rounds: ${conflicts})`);
  });

  it('50 racing API activations from one client address, through both nodes: 5 granted, no server error — 5 rounds', async () => {
    await galeraOneClientApiRounds(g, 5);
  });
});
