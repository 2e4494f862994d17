import { eventStoreContract } from '../contract/event-store.contract.js';
import { EventStoreDbEventStore } from './eventstoredb-event-store.js';

/**
 * Runs the contract against a real EventStoreDB when EVENTSTORE_URL points at one that
 * answers; otherwise every test is skipped with the reason printed.
 */
const url = process.env.EVENTSTORE_URL;

async function reachable(u: string): Promise<string | undefined> {
  const store = new EventStoreDbEventStore(u);
  try {
    await Promise.race([
      store.ping(),
      new Promise((_, rej) => setTimeout(() => rej(new Error('no answer in 5 s')), 5_000)),
    ]);
    return undefined;
  } catch (err) {
    return `EVENTSTORE_URL=${u} is set but EventStoreDB does not answer (${(err as Error).message}); docker compose up eventstoredb to run it`;
  } finally {
    await store.close().catch(() => undefined);
  }
}

const skip = url
  ? await reachable(url)
  : 'EVENTSTORE_URL is not set: no EventStoreDB server reachable; docker compose up eventstoredb to run it';

eventStoreContract('eventstoredb', async () => new EventStoreDbEventStore(url!), {
  ...(skip ? { skip } : {}),
  // One shared server: keep the heavy test smaller there.
  appendsPerWriter: 250,
});
