import { createRequire } from 'node:module';
import path from 'node:path';
import { Controller, Get, Header } from '@nestjs/common';
import express from 'express';
import { PAGE_HEADERS } from '../http/page-headers.js';
import { ApiRoute, OpenApiRegistry, type OpenApiDocument } from './registry.js';

/** Folder of the swagger-ui-dist package, served under /docs/assets (no CDN: the UI works offline). */
export function swaggerUiDir(): string {
  return path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
}

export const DOCS_ASSETS_PATH = '/docs/assets';

/**
 * The files of swagger-ui-dist that /docs uses, the only ones served: the package also holds
 * demo pages (index.html, oauth2-redirect.html) that would run their own scripts on the API's
 * origin, one of them loading a document from the Internet.
 */
const DOCS_ASSET_FILES = new Set([
  'swagger-ui.css',
  'swagger-ui.css.map',
  'swagger-ui-bundle.js',
  'swagger-ui-bundle.js.map',
  'favicon-16x16.png',
  'favicon-32x32.png',
]);

/** The docs' assets (mounted at DOCS_ASSETS_PATH): the files /docs uses, with the pages' headers; 404 for any other. */
export function docsAssetsHandler(): express.RequestHandler {
  const files = express.static(swaggerUiDir(), {
    index: false,
    maxAge: '1h',
    setHeaders: (res) => {
      for (const [name, value] of Object.entries(PAGE_HEADERS)) res.setHeader(name, value);
    },
  });
  return (req, res, next) => {
    if (!DOCS_ASSET_FILES.has(req.path.replace(/^\//, ''))) {
      res.status(404).type('text/plain').send('not found');
      return;
    }
    files(req, res, next);
  };
}

const page = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Switchyard API</title>
  <link rel="stylesheet" href="${DOCS_ASSETS_PATH}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="${DOCS_ASSETS_PATH}/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
`;

// validatorUrl null: the default badge would call a public validator over the network.
const init = `window.ui = SwaggerUIBundle({ url: '/docs/openapi.json', dom_id: '#swagger-ui', validatorUrl: null, deepLinking: true });\n`;

@Controller('docs')
export class DocsController {
  constructor(private readonly registry: OpenApiRegistry) {}

  @Get('openapi.json')
  @ApiRoute({ summary: 'The OpenAPI 3.1 document of this gateway', tags: ['docs'] })
  openapi(): OpenApiDocument {
    return this.registry.document();
  }

  @Get('init.js')
  @Header('content-type', 'text/javascript; charset=utf-8')
  @Header('x-content-type-options', 'nosniff')
  @ApiRoute({
    summary: 'The script that starts the Swagger UI on /docs',
    tags: ['docs'],
    response: { contentType: 'text/javascript' },
  })
  initScript(): string {
    return init;
  }

  @Get()
  @Header('content-type', 'text/html; charset=utf-8')
  // The console's policy: this page shares its origin (no inline script, no framing).
  @Header('content-security-policy', PAGE_HEADERS['content-security-policy'])
  @Header('x-frame-options', PAGE_HEADERS['x-frame-options'])
  @Header('x-content-type-options', PAGE_HEADERS['x-content-type-options'])
  @Header('referrer-policy', PAGE_HEADERS['referrer-policy'])
  @ApiRoute({
    summary: 'Browsable API documentation (Swagger UI)',
    tags: ['docs'],
    response: { contentType: 'text/html' },
  })
  ui(): string {
    return page;
  }
}
