import * as settings from '../models/settings.ts';
import { auditedChange } from './changes.ts';
import type { Actor, ServiceDeps } from './context.ts';

/** Saves every installation setting at once, with one `settings.updated` event holding before and after. */
export async function updateSettings(
  deps: ServiceDeps,
  actor: Actor,
  defaults: settings.Settings,
  values: settings.Settings,
): Promise<void> {
  await auditedChange(deps, actor, async (trx, now) => {
    const before = await settings.getSettings(trx, defaults);
    await settings.saveSettings(trx, values, now);
    const after = await settings.getSettings(trx, defaults);
    return {
      result: undefined,
      audit: { action: 'settings.updated', objectType: 'settings', objectId: 'installation', before, after },
    };
  });
}
