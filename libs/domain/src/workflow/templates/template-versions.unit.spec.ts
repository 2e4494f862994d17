import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { canonicalJson } from '../definition/registration.js';
import { workflowDefinitionSchema } from '../definition/schema.js';
import { builtInTemplates } from './index.js';

/**
 * The content each built-in template version names: sha256 of the canonical JSON of the parsed
 * definition (what the start seeds, and what the registration compares with `sameJson`). A
 * system that stored a version keeps that content, so a version's content must never change once
 * released: a change ships as a new version.
 */
const releasedContent: Readonly<Record<string, string>> = {
  'customer_onboarding@9': '4df6fe1d32405c3ad8d29af0995cda4364a1c368f7fb051a67ef8081eb9efc65',
  'customer_onboarding@10': 'cd28bd4c8884e159f3c42055072f66cf17755240e2d7a8ea0830baf0fb24a01c',
  'revenue_analysis@5': 'cb552eec48ad9f6a466d0952e0e8aff38151d22d7b8257885a1f653bbf3e4eb4',
  'customer_support@6': '425b07fcf1d0da58f87ad4eab4ba49aa0880f43d70c9a49a9b0c73a6ec1848ec',
};

const contentHash = (value: unknown): string => createHash('sha256').update(canonicalJson(value)).digest('hex');

describe('built-in templates: a version names one content', () => {
  for (const template of builtInTemplates) {
    const def = workflowDefinitionSchema.parse(template);
    const key = `${def.id}@${def.version}`;
    it(`${key} has the content pinned to it`, () => {
      const pinned = releasedContent[key];
      const actual = contentHash(def);
      assert.ok(
        pinned !== undefined,
        `template ${def.id} version ${def.version} has no pinned hash: add '${key}': '${actual}' to releasedContent`,
      );
      assert.equal(
        actual,
        pinned,
        `template ${def.id} changed without a new version: bump its version (and keep the old version's behaviour for executions already running on it) or, if it was never released, update this hash (${key}: ${actual})`,
      );
    });
  }

  it('the hash follows the content, not the order of its keys', () => {
    const def = workflowDefinitionSchema.parse(builtInTemplates[0]);
    const reordered = Object.fromEntries(Object.entries(def).reverse());
    assert.equal(contentHash(reordered), contentHash(def));
    assert.notEqual(contentHash({ ...def, name: `${def.name}.` }), contentHash(def));
  });
});
