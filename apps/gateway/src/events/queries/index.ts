/** The event log's queries. */
import { ReadEventsPageHandler } from './read-events-page.js';

export { ReadEventsPage } from './read-events-page.js';

export const EVENTS_QUERY_HANDLERS = [ReadEventsPageHandler];
