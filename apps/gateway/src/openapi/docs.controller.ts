import { createRequire } from 'node:module';
import path from 'node:path';
import { Controller, Get, Header } from '@nestjs/common';
import { ApiRoute, OpenApiRegistry, type OpenApiDocument } from './registry.js';

/** Folder of the swagger-ui-dist package, served under /docs/assets (no CDN: the UI works offline). */
export function swaggerUiDir(): string {
  return path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
}

export const DOCS_ASSETS_PATH = '/docs/assets';

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
  <script>
    // validatorUrl null: the default badge would call a public validator over the network.
    window.ui = SwaggerUIBundle({ url: '/docs/openapi.json', dom_id: '#swagger-ui', validatorUrl: null, deepLinking: true });
  </script>
</body>
</html>
`;

@Controller('docs')
export class DocsController {
  constructor(private readonly registry: OpenApiRegistry) {}

  @Get('openapi.json')
  @ApiRoute({ summary: 'The OpenAPI 3.1 document of this gateway', tags: ['docs'] })
  openapi(): OpenApiDocument {
    return this.registry.document();
  }

  @Get()
  @Header('content-type', 'text/html; charset=utf-8')
  @ApiRoute({
    summary: 'Browsable API documentation (Swagger UI)',
    tags: ['docs'],
    response: { contentType: 'text/html' },
  })
  ui(): string {
    return page;
  }
}
