import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';

/** A stranger on a NATS port: what it was sent. */
export interface FakeNatsServer {
  readonly port: number;
  /** The CONNECT lines' JSON, in the order they came. */
  readonly connects: Record<string, unknown>[];
  close(): Promise<void>;
}

/**
 * A listener that poses as a nats-server asking for credentials, as a local user who took the
 * port while it was free could: it greets with INFO (`auth_required`, and a nonce unless
 * `nonce: false`), keeps every CONNECT it is sent, then refuses it (`Authorization Violation`),
 * or with `accept` answers PING with PONG as if the credential were good.
 */
export function startFakeNatsServer(
  port: number,
  opts: { nonce?: boolean; accept?: boolean } = {},
): Promise<FakeNatsServer> {
  const connects: Record<string, unknown>[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const info = {
      server_id: 'FAKE',
      server_name: 'fake',
      version: '2.10.0',
      proto: 1,
      headers: true,
      max_payload: 1048576,
      auth_required: true,
      ...(opts.nonce === false ? {} : { nonce: randomBytes(11).toString('base64url') }),
    };
    socket.write(`INFO ${JSON.stringify(info)}\r\n`);
    let buf = '';
    socket.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      for (let end = buf.indexOf('\r\n'); end >= 0; end = buf.indexOf('\r\n')) {
        const line = buf.slice(0, end);
        buf = buf.slice(end + 2);
        if (line.startsWith('CONNECT ')) {
          try {
            connects.push(JSON.parse(line.slice(8)) as Record<string, unknown>);
          } catch {
            connects.push({ unparsed: line });
          }
          if (!opts.accept) {
            socket.end("-ERR 'Authorization Violation'\r\n");
            return;
          }
        } else if (line === 'PING') socket.write('PONG\r\n');
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () =>
      resolve({
        port,
        connects,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      }),
    );
  });
}
