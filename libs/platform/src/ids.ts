import { randomUUID } from 'node:crypto';

/** A new random id (UUID v4). Ids are strings everywhere so they survive JSON. */
export const newId = (): string => randomUUID();
