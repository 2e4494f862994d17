import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Logger } from '@switchyard/platform';
import { freshDatabase, stopOwnInfra } from '@switchyard/testing';
import { clocksDisagree, describeClockSkew, measureClockSkew, warnOnClockSkew } from './clock-skew.js';

describe("this host's clock against PostgreSQL's", () => {
  after(stopOwnInfra);

  it('agrees with a PostgreSQL on the same host', async () => {
    const skew = await measureClockSkew(await freshDatabase('clock_skew'));
    assert.ok(Math.abs(skew.skewMs) <= skew.uncertaintyMs + 50, `skew ${skew.skewMs} ± ${skew.uncertaintyMs} ms`);
    assert.equal(clocksDisagree(skew), false);
  });

  it('finds a host clock an hour ahead, says which way, and warns at start', async () => {
    const url = await freshDatabase('clock_skew_ahead');
    const hourAhead = () => Date.now() + 3_600_000;
    const skew = await measureClockSkew(url, hourAhead);
    assert.ok(Math.abs(skew.skewMs + 3_600_000) <= skew.uncertaintyMs + 50, `skew ${skew.skewMs}`);
    assert.equal(clocksDisagree(skew), true);
    assert.match(describeClockSkew(skew), /^PostgreSQL's clock is 3\d{6} ms behind this host's/);

    const warnings: { fields: Record<string, unknown>; msg: string }[] = [];
    const logger = {
      warn: (fields: Record<string, unknown>, msg: string) => warnings.push({ fields, msg }),
      debug: () => undefined,
    } as unknown as Logger;
    await warnOnClockSkew(url, logger, hourAhead);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!.msg, /behind this host's.*run NTP/);
    assert.ok(Math.abs(Number(warnings[0]!.fields.skewMs) + 3_600_000) < 1_000);
    // The same host's clock as it is: no warning.
    await warnOnClockSkew(url, logger);
    assert.equal(warnings.length, 1);
  });
});
