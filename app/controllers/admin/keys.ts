import type { Request, Response } from 'express';
import type { AppContext } from '../../app.ts';
import { hasPrivateKey } from '../../lib/key-files.ts';
import { listAll as listAllKeys } from '../../models/signing-keys.ts';
import { notFound } from '../../lib/errors.ts';
import * as service from '../../services/signing-keys.ts';
import { done } from '../helpers.ts';
import { onFailure } from '../../middleware/errors.ts';

/** A kid in a URL: anything that could not be one is 404 before it reaches the database or a file path. */
function kidParam(req: Request): string {
  const kid = req.params.kid;
  if (typeof kid !== 'string' || !/^[\w-]{1,64}$/.test(kid)) throw notFound();
  return kid;
}

/** Signing keys: public halves and status only; private keys never leave DATA_DIR/keys. */
export function adminKeysController(ctx: AppContext) {
  const dataDir = ctx.config.dataDir;
  return {
    async index(req: Request, res: Response) {
      const keys = (await listAllKeys(ctx.db)).map((k) => ({ ...k, hasPrivateKey: hasPrivateKey(dataDir, k.kid) }));
      res.render('admin/keys/index', { title: req.t('admin.keys.title'), keys });
    },

    async create(req: Request, res: Response) {
      const kid = await service.generateKey(ctx, req.actor, dataDir);
      done(req, res, res.locals.paths.adminKeys(), 'admin.keys.generated', { kid });
    },

    async activate(req: Request, res: Response) {
      const kid = kidParam(req);
      onFailure(res, { back: res.locals.paths.adminKeys() });
      await service.activateKey(ctx, req.actor, dataDir, kid);
      done(req, res, res.locals.paths.adminKeys(), 'admin.keys.activated', { kid });
    },

    async retire(req: Request, res: Response) {
      const kid = kidParam(req);
      onFailure(res, { back: res.locals.paths.adminKeys() });
      await service.retireKey(ctx, req.actor, kid);
      done(req, res, res.locals.paths.adminKeys(), 'admin.keys.retired', { kid });
    },
  };
}
