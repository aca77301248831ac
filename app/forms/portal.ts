import { z } from 'zod';
import { email, id, oneOf, optionalText, optionalWholeNumber, requiredText, wholeNumber, checkbox } from './fields.ts';
import { customerForm, emailList } from './console.ts';

export const portalIssueForm = z.object({ policy_id: id, quantity: optionalWholeNumber(1, 10_000), emails: emailList });

/** A new order with an existing customer of the manager's orders, or a new customer. */
export const portalOrderForm = z
  .object({
    order_ref: requiredText(100),
    reference: optionalText(200),
    customer_choice: oneOf(['existing', 'new'] as const),
    customer_id: optionalWholeNumber(1, 2_147_483_647),
    is_test: checkbox,
    is_trial: checkbox,
  })
  .passthrough()
  .superRefine((v, ctx) => {
    if (v.customer_choice === 'existing' && v.customer_id === null)
      ctx.addIssue({ code: 'custom', path: ['customer_id'], message: 'validation.required' });
  });

export { customerForm };

export const BUNDLE_LINES = 5;

/** Bundle lines line_<n>_policy / line_<n>_quantity / line_<n>_emails; empty lines are skipped. */
export function bundleLines(body: Record<string, unknown>) {
  const lines: { policyId: number; quantity: number | null; emails: string[] }[] = [];
  const errors: Record<string, string> = {};
  for (let n = 1; n <= BUNDLE_LINES; n++) {
    const policy = String(body[`line_${n}_policy`] ?? '').trim();
    if (!policy) continue;
    const parsed = portalIssueForm.safeParse({
      policy_id: policy,
      quantity: body[`line_${n}_quantity`],
      emails: body[`line_${n}_emails`],
    });
    if (!parsed.success) {
      for (const issue of parsed.error.issues)
        errors[`line_${n}_${issue.path[0] === 'policy_id' ? 'policy' : String(issue.path[0])}`] ??=
          /^[a-z]\w*(\.\w+)+$/i.test(issue.message) ? issue.message : 'validation.invalid';
      continue;
    }
    lines.push({ policyId: parsed.data.policy_id, quantity: parsed.data.quantity, emails: parsed.data.emails });
  }
  if (!lines.length && !Object.keys(errors).length) errors.line_1_policy = 'portal.bundleEmpty';
  return { lines, errors };
}

export const addManagerForm = z.object({ email, name: optionalText(200), role_id: id });
export const roleChoiceForm = z.object({ role_id: id });
export const subQuotaForm = z.object({ product_id: id, quota: wholeNumber(0, 10_000_000) });
export const borrowForm = z.object({ hours: wholeNumber(1, 8760) });
export const dispatchRowPrefix = 'email_';

/** The dispatch form: an e-mail address per chosen license (`email_<licenseId>`); empty fields are not chosen. */
export const dispatchForm = z.record(z.string(), z.unknown()).transform((body, ctx) => {
  const items: { licenseId: number; email: string }[] = [];
  for (const [field, value] of Object.entries(body)) {
    const m = /^email_(\d{1,10})$/.exec(field);
    if (!m || typeof value !== 'string' || !value.trim()) continue;
    const address = value.trim().toLowerCase();
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(address) || address.length > 254)
      ctx.addIssue({ code: 'custom', path: [field], message: 'validation.email' });
    else items.push({ licenseId: Number(m[1]), email: address });
  }
  return items;
});
