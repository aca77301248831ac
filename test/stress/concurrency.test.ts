import {
  activationBurstRounds,
  floatingRounds,
  mixedRounds,
  useOneServer,
  voucherRaceRounds,
} from '../helpers/concurrency.ts';

/**
 * The long rounds of the concurrency scenarios (npm run test:stress): what test/requests/concurrency.test.ts
 * runs once, many times over on one server and one database, each round with its every assertion.
 * A race that loses one time in twenty shows here.
 */

describe('Stress: seat limits under concurrency, many rounds (real HTTP, real database)', function () {
  this.timeout(600_000);
  const s = useOneServer();

  it('50 simultaneous activations of a 5-seat license leave exactly 5 devices, 5 granted and 45 "no seats" events — 20 rounds', async () => {
    await activationBurstRounds(s, 20);
  });

  it('50 racing redemptions of one code through the License API: exactly one license every round — 20 rounds', async () => {
    await voucherRaceRounds(s, 20);
  });

  it('floating license: checks of lapsed devices and new online activations at the same time free and take slots without a server error, and seats = active devices — 4 rounds', async () => {
    await floatingRounds(s, 4);
  });

  it('activations, device resets, license resets and deactivation uploads at the same time keep times_activated = active devices ≤ seats, and count transfers exactly — 6 rounds', async () => {
    await mixedRounds(s, 6);
  });
});
