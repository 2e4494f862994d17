/**
 * A JSON-RPC A2A `message/send` (non-blocking) or `message/stream` of a revenue analysis to the
 * data analyst, carrying `messageId`: what a client retrying a new-task message sends again.
 */
export const a2aRevenueRequest = (messageId: string, method: 'message/send' | 'message/stream' = 'message/send') => ({
  jsonrpc: '2.0',
  id: 1,
  method,
  params: {
    message: {
      kind: 'message',
      role: 'user',
      messageId,
      parts: [{ kind: 'data', data: { task_type: 'revenue_analysis', input: { timeframe: '30d' } } }],
    },
    ...(method === 'message/send' ? { configuration: { blocking: false } } : {}),
  },
});
