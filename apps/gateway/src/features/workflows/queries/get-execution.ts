import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { callerSeesRedactedPayloads } from '../../../events/redaction.js';
import { PayloadReads } from '../../../http/payload-reads.js';
import type { ExecutionDetail } from '../execution-detail.js';
import { detailAt, WorkflowsService } from '../workflows.service.js';

/**
 * One execution in the one detail shape (execution-detail.ts): from the read model once it has
 * the execution's last event, else folded from the stream; with `at`, the state after that
 * revision (time travel, always folded). `source` says which database answered (replica or primary).
 * A viewer's read of the read model leaves the payloads (redacted for it) in the database; a read
 * of a large execution's whole payloads takes its turn (PayloadReads, WorkflowsService.readSized).
 */
export class GetExecution extends Query<{
  detail: ExecutionDetail;
  source: 'replica' | 'primary' | undefined;
  /** Whether it was a read of whole payloads (a large execution's, which took its turn). */
  whole: boolean;
}> {
  constructor(
    readonly executionId: string,
    readonly at?: number,
    readonly minPosition?: number,
    /** The read model's payloads as their JSON text (JsonText), for an answer that streams them. */
    readonly payloadsAsText = false,
    /** The detail without inputs and outputs, whoever asks (an answer that cannot stream a large one). */
    readonly withoutPayloads = false,
  ) {
    super();
  }
}

@QueryHandler(GetExecution)
export class GetExecutionHandler implements IQueryHandler<GetExecution> {
  constructor(
    @Inject(WorkflowsService) private readonly svc: WorkflowsService,
    @Inject(PayloadReads) private readonly reads: PayloadReads,
  ) {}
  async execute(q: GetExecution) {
    let gated = false;
    const whole = <T>(read: () => Promise<T>): Promise<T> => {
      gated = true;
      return this.reads.run(read);
    };
    if (q.at !== undefined) {
      const detail = await this.svc.readSized(
        this.svc.pool,
        q.executionId,
        whole,
        () => detailAt(this.svc.store, q.executionId, q.at!),
        'stream',
      );
      return { detail, source: undefined, whole: gated };
    }
    let source: 'replica' | 'primary' | undefined;
    const detail = await this.svc.detail(q.executionId, q.minPosition, (s) => (source = s), {
      payloads: q.withoutPayloads || callerSeesRedactedPayloads() ? false : q.payloadsAsText ? 'text' : true,
      whole,
    });
    return { detail, source, whole: gated };
  }
}
