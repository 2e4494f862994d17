/** Helpers shared by the end-to-end specs (not a spec itself). */

/** One JSON request to the gateway with the given headers (the caller's API key); the body parsed when there is one. */
export async function gatewayRequest(
  base: string,
  headers: Record<string, string>,
  method: string,
  url: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${url}`, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
