import type { Request, Response } from 'express';
import type { AppContext } from '../app.ts';
import type { Account } from '../models/accounts.ts';
import { dataDirSecretBox } from '../crypto/secret-box.ts';
import { disableTwoFactorForm, twoFactorCodeForm } from '../forms/two-factor.ts';
import { parseForm } from '../forms/parse.ts';
import type { AppError } from '../lib/errors.ts';
import { onFailure, type FailurePage } from '../middleware/errors.ts';
import { flash } from '../lib/flash.ts';
import { mustEnrolSecondFactor } from '../policies/two-factor.ts';
import * as service from '../services/two-factor.ts';
import { done, refuse, renewSession } from './helpers.ts';
import { afterLoginPath, homeFor } from './sessions.ts';

declare module 'express-session' {
  interface SessionData {
    /** Login, second step: whose password was accepted, until when (epoch ms), and where to go next. */
    twoFactorLogin?: { accountId: number; expiresAt: number; returnTo?: string };
    /** Enrolment in progress: the new TOTP secret, sealed, until a code from the app confirms it. */
    twoFactorSetup?: string;
  }
}

/** How long the code form stays usable after the password was accepted. */
export const PENDING_LOGIN_MINUTES = 5;

/**
 * After the password step of an account with TOTP: a fresh session (new id) that only remembers who
 * is half-way through and until when. Nobody is logged in: `req.user` stays undefined.
 */
export function awaitSecondFactor(
  ctx: AppContext,
  req: Request,
  account: Account,
  returnTo: string | undefined,
): Promise<void> {
  const lang = req.session.lang;
  return new Promise((resolve, reject) =>
    req.session.regenerate((err) => {
      if (err) return reject(err);
      if (lang) req.session.lang = lang;
      req.session.twoFactorLogin = {
        accountId: account.id,
        expiresAt: ctx.clock.now().getTime() + PENDING_LOGIN_MINUTES * 60_000,
        returnTo,
      };
      resolve();
    }),
  );
}

const tooManyAttempts = (req: Request, err: AppError) =>
  req.t('counts.twoFactorTooManyAttempts', { count: Math.ceil(Number(err.headers['Retry-After']) / 60) });

/** The second login step, and the signed-in account's own two-factor settings. */
export function twoFactorController(ctx: AppContext) {
  const deps: service.TwoFactorDeps = {
    db: ctx.db,
    clock: ctx.clock,
    limiter: ctx.limiter,
    secretBox: dataDirSecretBox(ctx.config.dataDir),
  };

  /** The half-finished login of this session, or undefined when there is none or it has expired. */
  const pendingLogin = (req: Request) => {
    const pending = req.session.twoFactorLogin;
    if (pending && pending.expiresAt > ctx.clock.now().getTime()) return pending;
    delete req.session.twoFactorLogin;
    return undefined;
  };
  const endPendingLogin = (req: Request, res: Response) => {
    delete req.session.twoFactorLogin;
    backToLogin(req, res);
  };
  const backToLogin = (req: Request, res: Response) => {
    flash(req, 'info', req.t('twoFactor.login.expired', { minutes: PENDING_LOGIN_MINUTES }));
    res.redirect(303, res.locals.paths.login());
  };
  const challengePage = (req: Request, res: Response, status = 200, extra: object = {}) =>
    res
      .status(status)
      .set('Cache-Control', 'no-store')
      .render('auth/two-factor', { title: req.t('twoFactor.login.title'), ...extra });

  /** The settings page: status, and either the enrolment (QR code and confirmation) or the recovery codes form. */
  const settingsPage = async (req: Request, res: Response, status = 200, extra: object = {}) => {
    const account = req.user!;
    const state = await service.twoFactorStatus(deps, account);
    let enrolment: service.EnrolmentView | null = null;
    if (!state.enabledAt && req.session.twoFactorSetup) {
      enrolment = await service.enrolmentView(deps, account, req.session.twoFactorSetup, req.branding.displayName);
      if (!enrolment) delete req.session.twoFactorSetup;
    }
    const required = mustEnrolSecondFactor(account, await ctx.settings());
    res
      .status(status)
      .set('Cache-Control', 'no-store')
      .render('account/two-factor', { title: req.t('twoFactor.title'), state, enrolment, required, ...extra });
  };
  const disablePage = (req: Request, res: Response, status = 200, extra: object = {}) =>
    res.status(status).render('account/two-factor-disable', { title: req.t('twoFactor.disable.title'), ...extra });
  /** Recovery codes are shown once, in the answer to the POST that made them, and never cached. */
  const recoveryCodesPage = (req: Request, res: Response, codes: string[], introKey: string) =>
    res.set('Cache-Control', 'no-store').render('account/recovery-codes', {
      title: req.t('twoFactor.recoveryCodes.title'),
      codes,
      intro: req.t(introKey),
    });

  /**
   * How a two-factor form answers a failure: a wrong field re-renders it (422), too many wrong codes
   * re-render it with 429 and Retry-After, a change not allowed in this state (409) flashes why and
   * goes back to the settings page.
   */
  const failurePage = (req: Request, res: Response, page: (status: number, extra: object) => unknown): FailurePage => ({
    back: res.locals.paths.accountTwoFactor(),
    rerenderKinds: ['validation', 'rate_limited'],
    rerender: (err) =>
      page(
        err.status,
        err.kind === 'rate_limited' ? { formError: tooManyAttempts(req, err) } : { errors: err.fieldErrors },
      ),
  });

  return {
    showChallenge(req: Request, res: Response) {
      if (req.user) return res.redirect(303, homeFor(req.user, res.locals.paths));
      if (!pendingLogin(req)) return backToLogin(req, res);
      challengePage(req, res);
    },

    async answerChallenge(req: Request, res: Response) {
      if (req.user) return res.redirect(303, homeFor(req.user, res.locals.paths));
      const pending = pendingLogin(req);
      if (!pending) return backToLogin(req, res);
      const form = parseForm(twoFactorCodeForm, req.body);
      if (!form.ok) return challengePage(req, res, 422, { errors: form.errors });
      const page = failurePage(req, res, (status, extra) => challengePage(req, res, status, extra));
      onFailure(res, {
        ...page,
        rerenderKinds: ['validation', 'rate_limited', 'gone'],
        // The account was disabled or turned the factor off meanwhile: start again.
        rerender: (err) => (err.kind === 'gone' ? endPendingLogin(req, res) : page.rerender!(err)),
      });
      const account = await service.completeLogin(deps, req.actor, pending.accountId, form.data.code);
      // passport regenerates the session: a new id, and the pending state is gone with the old one.
      await new Promise<void>((resolve, reject) => req.logIn(account, (err) => (err ? reject(err) : resolve())));
      res.redirect(303, afterLoginPath(account, pending.returnTo, res.locals.paths));
    },

    show: (req: Request, res: Response) => settingsPage(req, res),

    async start(req: Request, res: Response) {
      onFailure(
        res,
        failurePage(req, res, (status, extra) => settingsPage(req, res, status, extra)),
      );
      req.session.twoFactorSetup = service.beginEnrolment(deps, req.user!);
      res.redirect(303, res.locals.paths.accountTwoFactor());
    },

    async confirm(req: Request, res: Response) {
      const sealed = req.session.twoFactorSetup;
      if (!sealed) return refuse(req, res, res.locals.paths.accountTwoFactor(), 'twoFactor.setup.expired');
      const form = parseForm(twoFactorCodeForm, req.body);
      if (!form.ok) return settingsPage(req, res, 422, { errors: form.errors });
      onFailure(
        res,
        failurePage(req, res, (status, extra) => settingsPage(req, res, status, extra)),
      );
      const codes = await service.confirmEnrolment(deps, req.actor, req.user!, sealed, form.data.code);
      delete req.session.twoFactorSetup;
      await renewSession(req);
      recoveryCodesPage(req, res, codes, 'twoFactor.enabled');
    },

    async regenerateRecoveryCodes(req: Request, res: Response) {
      const form = parseForm(twoFactorCodeForm, req.body);
      if (!form.ok) return settingsPage(req, res, 422, { errors: form.errors });
      onFailure(
        res,
        failurePage(req, res, (status, extra) => settingsPage(req, res, status, extra)),
      );
      const codes = await service.regenerateRecoveryCodes(deps, req.actor, req.user!, form.data.code);
      await renewSession(req);
      recoveryCodesPage(req, res, codes, 'twoFactor.recoveryCodes.regenerated');
    },

    showDisable(req: Request, res: Response) {
      if (!req.user!.totpEnabledAt) return refuse(req, res, res.locals.paths.accountTwoFactor(), 'twoFactor.notOn');
      disablePage(req, res);
    },

    async disable(req: Request, res: Response) {
      const form = parseForm(disableTwoFactorForm, req.body);
      if (!form.ok) return disablePage(req, res, 422, { errors: form.errors });
      onFailure(
        res,
        failurePage(req, res, (status, extra) => disablePage(req, res, status, extra)),
      );
      await service.disableTwoFactor(deps, req.actor, req.user!, form.data.current_password, form.data.code);
      await renewSession(req);
      done(req, res, res.locals.paths.accountTwoFactor(), 'twoFactor.disabled');
    },
  };
}
