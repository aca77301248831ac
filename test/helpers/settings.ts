/**
 * The notification fields of the console's settings form at their defaults (docs/notifications.md):
 * every post of the form carries them, as the page does.
 */
export const notificationFields = {
  notifications_enabled: 'on',
  notification_expiry_windows: '60, 30, 7, 1',
  notification_maintenance_windows: '30, 7',
  notification_seats_threshold: '90',
  notification_lease_days: '7',
  notification_refusal_spike: '10',
  notification_manager_digest_hour: '7',
  notification_staff_digest_day: '1',
  notification_staff_digest_hour: '7',
};
