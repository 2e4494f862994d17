/**
 * The operator console (apps/console, a static single-page app) served at /ui.
 * The assets are public like /docs: they hold no data, and every API call the page makes
 * carries the operator's key and passes the route's role check.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Logger } from '@switchyard/platform';
import { PAGE_HEADERS } from '../http/page-headers.js';

export const CONSOLE_PATH = '/ui';

/** Where `vite build` of apps/console writes (the gateway's dist is apps/gateway/dist/ui). */
export const defaultConsoleDir = (): string => path.resolve(import.meta.dirname, '..', '..', '..', 'console', 'dist');

function securityHeaders(res: Response): void {
  for (const [name, value] of Object.entries(PAGE_HEADERS)) res.setHeader(name, value);
}

/**
 * The /ui router:
 * 1. `/ui/assets/*` (content-hashed by Vite): cached for a year, immutable;
 * 2. other files of the build (favicon): short cache;
 * 3. any other GET under /ui: index.html, never cached, so client routes load the current build;
 * 4. without a build: 503 naming the command that builds it (the gateway still serves the API).
 */
export function consoleRouter(logger: Logger, dir: string = defaultConsoleDir()): Router {
  const router = express.Router();
  const index = path.join(dir, 'index.html');
  const built = existsSync(index);
  if (!built)
    logger.warn(
      { dir },
      'operator console not built: /ui answers 503 (run `npm start` or `npm run build -w @switchyard/console`)',
    );
  router.use((req: Request, res: Response, next: NextFunction) => {
    securityHeaders(res);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      res.status(405).type('text/plain').send('method not allowed');
      return;
    }
    if (!built && !existsSync(index)) {
      res
        .status(503)
        .type('text/plain')
        .send(
          'The operator console is not built. Run `npm start` (it builds it) or `npm run build -w @switchyard/console`, then reload.\n',
        );
      return;
    }
    next();
  });
  router.use('/assets', express.static(path.join(dir, 'assets'), { index: false, immutable: true, maxAge: '365d' }));
  router.use(
    express.static(dir, {
      index: false,
      maxAge: '5m',
      // The page names the build's hashed assets: asked for by its name it is as fresh as at /ui.
      setHeaders: (res, file) => {
        if (file.endsWith('.html')) res.setHeader('Cache-Control', 'no-cache');
      },
    }),
  );
  router.use((req: Request, res: Response) => {
    // A missing hashed asset is an old build's: 404, not the page (a script answered with HTML breaks confusingly).
    if (req.path.startsWith('/assets/')) {
      res.status(404).type('text/plain').send('not found');
      return;
    }
    res.setHeader('Cache-Control', 'no-cache');
    res.type('html').sendFile(index);
  });
  return router;
}
