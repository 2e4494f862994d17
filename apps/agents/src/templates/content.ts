/**
 * Markdown templates (Mustache, logic-less) for the content creator. They only place figures
 * computed from the customer's data; no wording depends on a model.
 */
export const proposalTemplate = `# {{title}}

**Prepared for:** {{customer.name}} ({{customer.segmentLabel}}, {{customer.regionLabel}})
**Customer since:** {{customer.signupDate}}
**Date:** {{asOf}}

## Where you are today

| | |
|---|---|
| Current plan | {{current.plan}} |
| Seats | {{current.seats}} |
| Monthly subscription | {{current.monthlyFormatted}} |
| Active users (avg. last 3 months) | {{usage.activeUsers}} ({{usage.utilisationPct}}% of seats) |
| API calls (avg. per month, last 3 months) | {{usage.apiCallsFormatted}} |
| Revenue with us, last 12 months | {{revenue.last12Formatted}} |
| Revenue with us, lifetime | {{revenue.lifetimeFormatted}} |
{{#support.tickets}}| Support tickets (last 12 months) | {{support.tickets}}{{#support.csat}}, average satisfaction {{support.csat}}/5{{/support.csat}} |
{{/support.tickets}}

## Our proposal

{{#reasons}}
- {{.}}
{{/reasons}}

| | Today | Proposed |
|---|---|---|
| Plan | {{current.plan}} | {{proposed.plan}} |
| Seats | {{current.seats}} | {{proposed.seats}} |
| Price per seat | {{current.pricePerSeatFormatted}} | {{proposed.pricePerSeatFormatted}} |
| Monthly | {{current.monthlyFormatted}} | {{proposed.monthlyFormatted}} |
{{#proposed.discountPct}}| Discount | | {{proposed.discountPct}}% for a 12-month commitment |
{{/proposed.discountPct}}

**Annual contract value:** {{proposed.annualFormatted}} ({{proposed.deltaFormatted}} per month compared with today).

## Next steps

1. Review the figures above with your team.
2. Reply to this proposal or contact {{contact}} to schedule a call.
3. The change takes effect on the first day of the next billing cycle; unused days are prorated.
`;

export const marketingTemplates: Record<'email' | 'blog' | 'social', string> = {
  email: `**Subject:** Your year in numbers: {{activeCustomers}} {{audience}} teams, {{apiCallsFormatted}} API calls

Hi {{=<% %>=}}{{first_name}}<%={{ }}=%>,

Over the last 12 months, {{activeCustomers}} {{audience}} teams ran their work on our platform: on average {{avgActiveUsers}} active users each and {{apiCallsFormatted}} API calls in total.
{{#growthPct}}Revenue from {{audience}} customers grew {{growthPct}}% year over year, {{/growthPct}}and teams rated our support {{csat}}/5 on average.

**What customers ask for most:** {{topRequest}}.

[See what's new →](https://example.invalid/whats-new)
`,
  blog: `# {{audienceTitle}} in numbers: the last 12 months

We looked at how {{activeCustomers}} {{audience}} customers used the platform between {{from}} and {{to}}.

- **Adoption:** {{avgActiveUsers}} active users per customer on average, {{utilisationPct}}% of purchased seats.
- **Scale:** {{apiCallsFormatted}} API calls in total.
- **Growth:** revenue from {{audience}} customers {{growthWord}} {{growthAbsPct}}% compared with the year before.
- **Support:** {{tickets}} tickets, average satisfaction {{csat}}/5, median resolution {{resolutionHours}} hours.

The most common request from these teams was **{{topRequest}}**, and it is on our roadmap.
`,
  social: `{{activeCustomers}} {{audience}} teams, {{apiCallsFormatted}} API calls and a {{csat}}/5 support rating in the last 12 months. Thank you! #{{hashtag}}`,
};

/**
 * One new customer's welcome e-mail: a subject of its own and a plain-text body (it is mailed as
 * text, so no Markdown), from the customer's own row and subscription only; the newsletter's
 * figures of other customers and of revenue have no place in it.
 */
export const welcomeTemplates = {
  subject: 'Welcome to Switchyard, {{name}}',
  text: `Hi {{name}},

Welcome to Switchyard! Your {{plan}} plan with {{seatsText}} is active.

Your subscription
- Plan: {{plan}}
- Seats: {{seats}}
- Price: {{pricePerSeatFormatted}} per seat, {{monthlyFormatted}} per month

Next steps
1. Invite your team: your plan has {{seatsText}}, one for each person who signs in.
2. Create an API key and connect your first system.
3. Start a workflow from one of the built-in templates, or ask an agent for an analysis.
4. Questions? Reply to this e-mail and a person from our team will answer.

The Switchyard team
`,
};
