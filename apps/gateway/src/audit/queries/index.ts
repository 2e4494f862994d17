/** The audit trail's queries. */
import { ReadAuditPageHandler } from './read-audit-page.js';

export { ReadAuditPage } from './read-audit-page.js';

export const AUDIT_QUERY_HANDLERS = [ReadAuditPageHandler];
