/** The support knowledge base shipped with the agent: short, self-contained answers per intent. */
export interface KbArticle {
  readonly id: string;
  readonly intent: SupportIntent;
  readonly title: string;
  /** words whose presence in the query makes this article the better match within its intent */
  readonly keywords: readonly string[];
  readonly answer: string;
}

export type SupportIntent = 'billing' | 'technical' | 'account_access' | 'cancellation' | 'feature_request' | 'general';

export const knowledgeBase: readonly KbArticle[] = [
  {
    id: 'kb-billing-invoice',
    intent: 'billing',
    title: 'Finding and understanding your invoices',
    keywords: ['invoice', 'receipt', 'vat', 'tax', 'statement', 'pdf'],
    answer:
      'Every invoice is available under Settings → Billing → Invoices as a PDF. Each line shows the plan, the number of seats and any usage overage for the month.',
  },
  {
    id: 'kb-billing-double-charge',
    intent: 'billing',
    title: 'Unexpected or duplicate charges',
    keywords: ['charged', 'twice', 'double', 'duplicate', 'overcharged', 'refund', 'wrong', 'amount'],
    answer:
      'If a card was charged twice, the second charge is usually a pre-authorisation that drops off within 3–5 business days. If it is still there after that, reply with the last four digits of the card and the charge date and we will refund the duplicate in full.',
  },
  {
    id: 'kb-billing-plan-change',
    intent: 'billing',
    title: 'Changing plan or seat count',
    keywords: ['upgrade', 'downgrade', 'seats', 'plan', 'prorate', 'pricing'],
    answer:
      'Plan and seat changes take effect immediately and are prorated to the day on the next invoice. You can change them under Settings → Billing → Plan.',
  },
  {
    id: 'kb-tech-api-errors',
    intent: 'technical',
    title: 'API errors and timeouts',
    keywords: ['api', 'error', '500', '503', 'timeout', 'timeouts', 'latency', 'slow', 'integration', 'webhook'],
    answer:
      'Intermittent 5xx errors and timeouts are safe to retry with exponential backoff (start at 1 s, double up to 30 s). Our status page lists ongoing incidents; if errors persist for more than 15 minutes, send us a request id from the response headers so we can trace it.',
  },
  {
    id: 'kb-tech-outage',
    intent: 'technical',
    title: 'Service unavailable or not loading',
    keywords: ['down', 'outage', 'not loading', 'unavailable', 'crash', 'crashes', 'broken', 'blank'],
    answer:
      'Please check the status page first. If it shows no incident, clear the browser cache or try a private window, and send us the time (with time zone) and a screenshot of what you see.',
  },
  {
    id: 'kb-tech-data-sync',
    intent: 'technical',
    title: 'Data not syncing or exports failing',
    keywords: ['sync', 'export', 'import', 'csv', 'missing', 'data', 'report'],
    answer:
      'Syncs run every 15 minutes; a failed sync is retried automatically three times. Under Settings → Integrations you can see the last run and its error, and start a manual sync.',
  },
  {
    id: 'kb-account-login',
    intent: 'account_access',
    title: 'Cannot log in or reset password',
    keywords: ['login', 'log in', 'password', 'reset', 'locked', '2fa', 'sso', 'sign in'],
    answer:
      'Use “Forgot password” on the sign-in page; the reset link is valid for 30 minutes. After five failed attempts an account is locked for 15 minutes. If your company uses SSO, sign in through your identity provider instead.',
  },
  {
    id: 'kb-account-users',
    intent: 'account_access',
    title: 'Adding or removing users',
    keywords: ['user', 'users', 'invite', 'remove', 'admin', 'permission', 'role', 'access'],
    answer:
      'Admins can invite and remove users under Settings → Team. Removing a user frees the seat immediately; their data stays with the workspace.',
  },
  {
    id: 'kb-cancellation',
    intent: 'cancellation',
    title: 'Cancelling a subscription',
    keywords: ['cancel', 'cancellation', 'terminate', 'close', 'leave', 'switch', 'competitor'],
    answer:
      'You can cancel under Settings → Billing → Plan; the subscription stays active until the end of the paid period and your data can be exported for 30 days after that. If something is not working for you, we would like the chance to fix it first.',
  },
  {
    id: 'kb-feature-request',
    intent: 'feature_request',
    title: 'Requesting a feature',
    keywords: ['feature', 'request', 'would be great', 'suggestion', 'roadmap', 'add', 'support for'],
    answer:
      'Thank you for the suggestion. We log every request with the customer and use case attached; the product team reviews them monthly and we will let you know when it moves onto the roadmap.',
  },
  {
    id: 'kb-general',
    intent: 'general',
    title: 'General questions',
    keywords: [],
    answer:
      'Thanks for reaching out. Our documentation covers most setup questions, and our team answers here within one business day.',
  },
];
