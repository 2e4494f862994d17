import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { parseServerConfig } from '../registry/schema.js';
import { jsonBytes, ListingBounds, shareBytes, withinBytes } from './listing-bounds.js';

describe('listing bounds', () => {
  it('keeps the first max_tools tools, warns once per new count and remembers what was left out', () => {
    const lines: string[] = [];
    const bounds = new ListingBounds(pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) }));
    const config = parseServerConfig({
      name: 'big',
      role: 'other',
      transport: { kind: 'http', url: 'http://127.0.0.1:1/mcp' },
      max_tools: 3,
    });
    assert.equal(config.max_prompts, 1_000);
    const names = ['a', 'b', 'c', 'd', 'e'];
    assert.deepEqual(bounds.keep(config, 'tools', names), ['a', 'b', 'c']);
    assert.deepEqual(bounds.keep(config, 'tools', names), ['a', 'b', 'c']);
    assert.equal(lines.length, 1);
    const warning = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(warning.server, 'big');
    assert.equal(warning.listed, 5);
    assert.equal(warning.left_out, 2);
    assert.equal(warning.setting, 'max_tools');
    assert.deepEqual(bounds.leftOutOf('big'), { tools: 2 });
    bounds.keep(config, 'tools', [...names, 'f']);
    assert.equal(lines.length, 2, 'a new count is told again');
    assert.deepEqual(bounds.keep(config, 'tools', ['a']), ['a']);
    assert.equal(bounds.leftOutOf('big'), undefined);
  });

  it('keeps the first items within a byte budget, as a JSON array', () => {
    const items = ['aaaa', 'bbbb', 'cccc'];
    const whole = jsonBytes(items);
    assert.deepEqual(withinBytes(items, whole), { items, leftOut: 0 });
    assert.deepEqual(withinBytes(items, whole - 1), { items: ['aaaa', 'bbbb'], leftOut: 1 });
    assert.deepEqual(withinBytes(items, 3), { items: [], leftOut: 3 });
    assert.ok(jsonBytes(withinBytes(items, 15).items) <= 15);
    // Bytes, not characters: a name of 10 three-byte characters takes 32.
    assert.deepEqual(withinBytes(['€'.repeat(10)], 20).items, []);
  });

  it('shares a budget so that small wants are met whole and one large want takes only the rest', () => {
    assert.deepEqual(shareBytes([10, 20, 1_000_000], 1_000), [10, 20, 970]);
    assert.deepEqual(shareBytes([600, 600], 1_000), [500, 500]);
    assert.deepEqual(shareBytes([5, 5], -10), [0, 0]);
    assert.deepEqual(shareBytes([], 100), []);
  });
});
