import type { Device } from '../models/devices.ts';
import type { License } from '../models/licenses.ts';
import type { Permission } from './permissions.ts';

export interface DeviceActions {
  /** Deactivate it, freeing its seat (how a license moves to another machine). */
  reset: boolean;
  /** Block its hardware id for this license. */
  blacklist: boolean;
  /** Take its hardware id off the blacklist (the undo of blacklist: the same permission). */
  unblacklist: boolean;
  /** Download a refresh license file (an active offline activation with its device key). */
  refresh: boolean;
  /** Lend a floating slot until a date. */
  borrow: boolean;
  /** An air-gap activation of the first code version: its deactivation codes cannot be proven. */
  unprovenAirgap: boolean;
}

/**
 * What can be done to a device of a license: the one rule the pages show buttons by and the
 * services enforce. `permissions`: the portal account's on this license's order (undefined for the
 * console, where an admin may do all).
 */
export function deviceActions(license: License, device: Device, permissions?: ReadonlySet<Permission>): DeviceActions {
  const may = (p: Permission) => !permissions || permissions.has(p);
  return {
    reset: device.active && may('reset_device'),
    blacklist: !device.blacklisted && may('revoke_device'),
    unblacklist: device.blacklisted && may('revoke_device'),
    refresh: device.active && device.channel === 'offline' && device.devicePublicKey !== null,
    borrow: device.active && license.floating && license.canBorrow && may('borrow_license'),
    unprovenAirgap: device.active && device.channel === 'airgap' && device.airgapCommitment === null,
  };
}
