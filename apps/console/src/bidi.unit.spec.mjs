// The console's bidirectional-control helper (plain JS: the console's tsconfig type-checks only
// its browser sources). Run: node --test apps/console/src/bidi.unit.spec.mjs (Node >= 22.18 loads the .ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { showBidi } from './bidi.ts';

describe('showBidi', () => {
  it('shows every bidirectional control as a marker, so server text cannot reorder what follows it', () => {
    const name = 'RTL-wf\u202e name\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c end';
    const shown = showBidi(`{"name": "${name}", "status": "failed"}`);
    assert.doesNotMatch(shown, /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/);
    assert.equal(
      shown,
      '{"name": "RTL-wf⟪U+202E⟫ name⟪U+202A⟫⟪U+202B⟫⟪U+202C⟫⟪U+202D⟫⟪U+2066⟫⟪U+2067⟫⟪U+2068⟫⟪U+2069⟫⟪U+200E⟫⟪U+200F⟫⟪U+061C⟫ end", "status": "failed"}',
    );
  });

  it('leaves other text alone, right-to-left letters included', () => {
    for (const text of ['plain', 'שלום עולם', 'مرحبا', 'emoji ✅ and \u00a0space', ''])
      assert.equal(showBidi(text), text);
  });
});
