import Sentiment from 'sentiment';
import { knowledgeBase, type KbArticle, type SupportIntent } from './knowledge-base.js';

/**
 * Intent: a transparent keyword model. Each intent has weighted patterns; the highest total
 * wins, ties broken by the order below, nothing matched means `general`. It is small and
 * predictable on purpose: every decision comes with the words that caused it.
 */
const INTENT_PATTERNS: Record<Exclude<SupportIntent, 'general'>, readonly [RegExp, number][]> = {
  cancellation: [
    [/\bcancel(l?ing|l?ation|led)?\b/i, 3],
    [/\b(terminate|close (my|our) account|end (my|our) subscription|stop (my|our) subscription)\b/i, 3],
    [/\b(switch(ing)? to|moving to) (a )?(competitor|another)/i, 2],
    [/\bnot renew(ing)?\b/i, 3],
  ],
  billing: [
    [/\b(invoice|invoices|receipt|billing|billed|bill)\b/i, 3],
    [/\b(charged?|charges|overcharged|refund|payment|paid|credit card|card)\b/i, 2],
    [/\b(price|pricing|plan|seats?|prorat\w*|vat|tax)\b/i, 1],
  ],
  account_access: [
    [/\b(log ?in|sign ?in|signin|password|locked( out)?|2fa|mfa|sso)\b/i, 3],
    [/\b(invite|permissions?|roles?|admin|access)\b/i, 1],
  ],
  technical: [
    [/\b(error|errors|bug|crash(es|ed)?|broken|fails?|failing|failed|exception)\b/i, 2],
    [/\b(api|webhook|integration|sync|export|import|timeouts?|latency|slow)\b/i, 2],
    [/\b(down|outage|not (loading|working)|unavailable|500|503)\b/i, 3],
  ],
  feature_request: [
    [/\b(feature request|would be (great|nice)|it would help|suggestion|roadmap)\b/i, 3],
    [/\b(please add|could you add|support for|wish)\b/i, 2],
  ],
};
const INTENT_ORDER: readonly Exclude<SupportIntent, 'general'>[] = [
  'cancellation',
  'account_access',
  'technical',
  'billing',
  'feature_request',
];

export interface IntentResult {
  readonly intent: SupportIntent;
  readonly scores: Record<string, number>;
  readonly matched: string[];
}

export function classifyIntent(text: string): IntentResult {
  const scores: Record<string, number> = {};
  const matched: string[] = [];
  for (const intent of INTENT_ORDER) {
    let score = 0;
    for (const [re, w] of INTENT_PATTERNS[intent]) {
      const m = re.exec(text);
      if (m) {
        score += w;
        matched.push(`${intent}:${m[0].toLowerCase()}`);
      }
    }
    scores[intent] = score;
  }
  let best: SupportIntent = 'general';
  let bestScore = 0;
  for (const intent of INTENT_ORDER) {
    if (scores[intent]! > bestScore) {
      best = intent;
      bestScore = scores[intent]!;
    }
  }
  return { intent: best, scores, matched };
}

// AFINN (via the `sentiment` package) plus a few support-domain words it lacks or under-weights.
const analyzer = new Sentiment();
const DOMAIN_WORDS: Record<string, number> = {
  unacceptable: -4,
  unusable: -4,
  outage: -3,
  broken: -2,
  ridiculous: -3,
  furious: -4,
  worst: -3,
  overcharged: -3,
  scam: -4,
  again: -1,
  still: -1,
  lifesaver: 3,
  smooth: 2,
};

export interface SentimentResult {
  readonly score: number;
  /** score per word, comparable across texts of different length */
  readonly comparative: number;
  readonly label: 'negative' | 'neutral' | 'positive';
  readonly negativeWords: string[];
  readonly positiveWords: string[];
}

export function analyseSentiment(text: string): SentimentResult {
  const r = analyzer.analyze(text, { extras: DOMAIN_WORDS });
  const label = r.score <= -2 ? 'negative' : r.score >= 2 ? 'positive' : 'neutral';
  return {
    score: r.score,
    comparative: Math.round(r.comparative * 1000) / 1000,
    label,
    negativeWords: r.negative,
    positiveWords: r.positive,
  };
}

const URGENT =
  /\b(urgent(ly)?|asap|immediately|right now|emergency|critical|production (is )?down|all (of )?(our|my) users|can(no|')t work|losing (money|customers|revenue)|deadline|today)\b/i;
const LEGAL =
  /\b(lawyer|attorney|legal action|sue|lawsuit|chargeback|dispute the charge|gdpr|data breach|regulator)\b/i;

export interface UrgencyResult {
  readonly urgent: boolean;
  readonly signals: string[];
  readonly legalRisk: boolean;
}

export function detectUrgency(text: string): UrgencyResult {
  const signals: string[] = [];
  const m = URGENT.exec(text);
  if (m) signals.push(`phrase "${m[0].toLowerCase()}"`);
  const bangs = (text.match(/!/g) ?? []).length;
  if (bangs >= 2) signals.push(`${bangs} exclamation marks`);
  const shouted = (text.match(/\b[A-Z]{3,}\b/g) ?? []).filter(
    (w) => !['API', 'SSO', 'CSV', 'PDF', 'VAT', 'MFA', 'URL', 'GDPR'].includes(w),
  );
  if (shouted.length >= 2) signals.push(`${shouted.length} words in capitals`);
  const legal = LEGAL.exec(text);
  return { urgent: signals.length > 0, signals, legalRisk: legal !== null };
}

/** Best article within the intent: most keyword hits, first listed on ties. */
export function pickArticle(intent: SupportIntent, text: string): { article: KbArticle; keywordHits: string[] } {
  const lower = text.toLowerCase();
  const candidates = knowledgeBase.filter((a) => a.intent === intent);
  let best = candidates[0] ?? knowledgeBase.find((a) => a.intent === 'general')!;
  let hits: string[] = [];
  for (const a of candidates) {
    const h = a.keywords.filter((k) => new RegExp(`\\b${k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`).test(lower));
    if (h.length > hits.length) {
      best = a;
      hits = h;
    }
  }
  return { article: best, keywordHits: hits };
}

export interface CustomerFacts {
  readonly name: string;
  readonly segment: string;
  readonly revenue12m: number;
  readonly openTickets: number;
}

export interface EscalationDecision {
  readonly escalate: boolean;
  readonly priority: 'p1' | 'p2' | 'p3';
  readonly reasons: string[];
}

/**
 * Escalate to a person when a drafted answer is not enough: strongly negative tone, an urgent
 * service-impacting problem, legal or chargeback language, a high-value account that wants to
 * cancel, or a customer who already has several open tickets.
 */
export function decideEscalation(
  intent: SupportIntent,
  sentiment: SentimentResult,
  urgency: UrgencyResult,
  customer: CustomerFacts | null,
): EscalationDecision {
  const reasons: string[] = [];
  if (sentiment.score <= -5 || sentiment.comparative <= -0.3) {
    reasons.push(`strongly negative tone (score ${sentiment.score}, comparative ${sentiment.comparative})`);
  }
  if (urgency.urgent && (intent === 'technical' || intent === 'account_access')) {
    reasons.push(`urgent ${intent} issue (${urgency.signals.join(', ')})`);
  }
  if (urgency.legalRisk) reasons.push('legal or chargeback language');
  if (intent === 'cancellation' && customer && (customer.segment === 'enterprise' || customer.revenue12m >= 50_000)) {
    reasons.push(
      `cancellation request from a ${customer.segment} account worth ${Math.round(customer.revenue12m)} in the last 12 months`,
    );
  }
  if (customer && customer.openTickets >= 2) reasons.push(`${customer.openTickets} tickets already open`);
  const p1 = reasons.length >= 2 || urgency.legalRisk || (urgency.urgent && sentiment.label === 'negative');
  return { escalate: reasons.length > 0, priority: reasons.length === 0 ? 'p3' : p1 ? 'p1' : 'p2', reasons };
}

export function draftReply(args: {
  customerName: string | null;
  intent: SupportIntent;
  sentiment: SentimentResult;
  article: KbArticle;
  escalation: EscalationDecision;
}): string {
  const lines: string[] = [];
  lines.push(args.customerName ? `Hello ${args.customerName} team,` : 'Hello,');
  lines.push('');
  if (args.sentiment.label === 'negative') {
    lines.push('I am sorry for the trouble this has caused, and thank you for telling us so clearly.');
  } else {
    lines.push('Thanks for getting in touch.');
  }
  lines.push(args.article.answer);
  if (args.escalation.escalate) {
    lines.push('');
    lines.push(
      args.escalation.priority === 'p1'
        ? 'I have passed this to a senior member of our team as a priority; they will contact you within the hour.'
        : 'I have asked a specialist on our team to follow up with you personally within one business day.',
    );
  }
  lines.push('');
  lines.push('Best regards,');
  lines.push('Customer Success');
  return lines.join('\n');
}
