import type { Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import type { Account } from '../models/accounts.ts';
import { formData } from '../forms/parse.ts';
import { redeemForm, redeemSignUpForm } from '../forms/vouchers.ts';
import { forbidden, notFound } from '../lib/errors.ts';
import { onFailure } from '../middleware/errors.ts';
import { limitRedemption, redeemVoucher, signUpAndRedeem } from '../services/vouchers.ts';
import { done } from './helpers.ts';

/**
 * Redeeming a code in the User Portal (`/redeem`, public while end-user self-service is on): a
 * signed-in end user enters the code; a visitor enters it with the details of a new end-user account,
 * created and signed in with the same step. Attempts are limited per client before any work.
 */
export function redeemController(ctx: AppContext) {
  const open = async () => {
    if (!(await ctx.settings()).endUserSelfService) throw notFound();
  };

  const page = (
    req: Request,
    res: Response,
    status = 200,
    values: Record<string, unknown> = {},
    errors = {},
    refusal: string | null = null,
  ) =>
    res
      .status(status)
      .set('Cache-Control', 'no-store')
      .render('account/redeem', {
        title: req.t('vouchers.redeem.title'),
        mode: !req.user ? 'sign_up' : req.user.role === 'end_user' ? 'signed_in' : 'not_end_user',
        values: { language: req.lang, ...values, password: undefined, password_confirmation: undefined },
        errors,
        refusal,
      });

  const logIn = (req: Request, account: Account) =>
    new Promise<void>((resolve, reject) => req.logIn(account, (err) => (err ? reject(err) : resolve())));

  return {
    async show(req: Request, res: Response) {
      await open();
      const code = typeof req.query.code === 'string' ? req.query.code.slice(0, 64) : '';
      // "Sign in, then redeem" comes back here (without the code: it is not kept in the session).
      if (!req.user) req.session.returnTo = res.locals.paths.redeem();
      page(req, res, 200, { code });
    },

    async create(req: Request, res: Response) {
      await open();
      if (req.user && req.user.role !== 'end_user') throw forbidden();
      await limitRedemption(ctx, req.actor);
      onFailure(res, {
        rerenderKinds: ['validation', 'refusal'],
        rerender: (err) =>
          page(req, res, err.status, req.body ?? {}, err.fieldErrors, err.kind === 'refusal' ? err.code : null),
      });
      if (req.user) {
        const { code } = formData(redeemForm, req.body);
        const r = await redeemVoucher(ctx, req.actor, code, { accountId: req.user.id, channel: 'portal' });
        return done(req, res, res.locals.paths.portal(), 'vouchers.redeem.done', { product: r.productName });
      }
      const form = formData(redeemSignUpForm, req.body);
      const { account, redemption } = await signUpAndRedeem(
        ctx,
        req.actor,
        { email: form.email, name: form.name, password: form.password, language: form.language },
        form.code,
      );
      // passport regenerates the session here: a new session id for the new account (no fixation).
      await logIn(req, account);
      done(req, res, res.locals.paths.portal(), 'vouchers.redeem.done', { product: redemption.productName });
    },
  };
}
