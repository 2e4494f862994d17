/**
 * Unicode bidirectional controls: the embeddings, overrides and isolates (U+202A-U+202E,
 * U+2066-U+2069) and the marks (U+200E, U+200F, U+061C). In text from the server (a workflow's
 * name is the operator's free text) they reorder what follows them: "started 11:42, took 89 ms"
 * shown backwards. The CLI writes them as escapes; the console isolates server text (<bdi>,
 * `unicode-bidi: isolate` in style.css) and, where text is shown as data (JSON), shows them.
 */
const BIDI_CONTROLS = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** `text` with each bidirectional control shown as a visible marker (`⟪U+202E⟫`) instead of acted on. */
export function showBidi(text: string): string {
  return text.replace(BIDI_CONTROLS, (c) => `⟪U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}⟫`);
}
