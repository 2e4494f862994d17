/**
 * Optional wording helper. Every agent result is computed deterministically from data;
 * an OpenAI-compatible endpoint may later rephrase prose (never the figures). The default
 * returns the text unchanged so nothing depends on a model being reachable.
 */
export interface LlmClient {
  /** Return `text` reworded for `purpose`; must keep every number and name intact. */
  polish(text: string, purpose: string, signal?: AbortSignal): Promise<string>;
}

export const noopLlm: LlmClient = {
  async polish(text: string): Promise<string> {
    return text;
  },
};
