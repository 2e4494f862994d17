import { z } from 'zod';
import type { Api } from './client.js';
import { CliError, EXIT } from './errors.js';
import { cutToWidth, green, oneLine, printLine, red, terminalSafe, yellow } from './output.js';
import { eventSchema, liveEvents } from './sse.js';
import { ExecutionView, renderView, stepLine } from './workflow-view.js';

const eventsPageSchema = z.object({
  execution_id: z.string(),
  events: z.array(eventSchema),
  next: z.string().nullable().optional(),
});

/** The event stream of one execution (the prefix filter also matches longer ids: checked per event). */
export const executionStreamId = (executionId: string): string => `workflow_execution-${executionId}`;

/**
 * Follow one execution until it ends: its history first (GET .../events), then the live event
 * feed from the last position seen, so nothing is missed and nothing is polled. On a terminal the
 * step block is redrawn in place (a spinner per running step); otherwise one line per change.
 * Exit code 4 when the execution failed or was canceled, or `timeoutSeconds` passed before it
 * ended (it goes on). Without a timeout it watches as long as the execution runs; a lost
 * connection still ends it (the live feed's idle timeout).
 */
export async function watchExecution(
  api: Api,
  executionId: string,
  o: {
    json: boolean;
    timeoutSeconds?: number;
    /**
     * `last_retry`: the history before the execution's last retry is folded without a line (a
     * retry's watcher follows the new run, not the steps of the run before it as if they ran again).
     */
    linesFrom?: 'last_retry';
  },
): Promise<void> {
  const view = new ExecutionView(executionId);
  const tty = process.stdout.isTTY === true && !o.json;
  const stream = executionStreamId(executionId);
  let drawn = 0;
  let frame = 0;
  // The block is redrawn by moving the cursor up as many lines as were drawn: each line must be
  // one line on the screen (a newline in a name is written as \n, a line wider than the terminal
  // is cut, as it would wrap), or stale copies of the block pile up.
  const draw = () => {
    const lines = renderView(view, Date.now(), frame++);
    const width = Math.max(20, (process.stdout.columns || 120) - 1);
    if (drawn) process.stdout.write(`\u001b[${drawn}A`);
    process.stdout.write(lines.map((l) => `\u001b[2K${terminalSafe(cutToWidth(oneLine(l), width))}`).join('\n') + '\n');
    drawn = lines.length;
  };
  const onChange = (changed: string[]) => {
    if (o.json || tty) return;
    for (const id of changed) printLine(stepLine(view.steps.get(id)!, Date.now()));
  };

  const ac = new AbortController();
  const onSigint = () => ac.abort();
  process.once('SIGINT', onSigint);
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const deadline = o.timeoutSeconds
    ? setTimeout(() => {
        timedOut = true;
        ac.abort();
      }, o.timeoutSeconds * 1000)
    : undefined;
  const timeoutError = () =>
    new CliError(
      `--timeout ${o.timeoutSeconds} s passed before the execution ended (it goes on: switchyard workflow watch ${executionId})`,
      EXIT.failed,
    );
  try {
    // The history a page at a time (the gateway answers at most 1,000 events per request).
    // Its lines wait for the whole history when they start at its last retry (known at its end).
    const held: (() => void)[] = [];
    const line = (f: () => void) => (o.linesFrom ? held.push(f) : f());
    let after: number | undefined;
    for (;;) {
      const { body } = await api.call(
        `/api/v1/workflows/executions/${encodeURIComponent(executionId)}/events`,
        eventsPageSchema,
        after === undefined ? {} : { query: { after } },
      );
      for (const e of body.events) {
        if (o.json) printLine(JSON.stringify(e));
        const changed = view.apply(e);
        if (e.type === 'ExecutionRetried' && o.linesFrom === 'last_retry') {
          held.length = 0;
          if (!tty && !o.json) held.push(() => printLine(`${view.name || 'workflow'} ${executionId} retried`));
          continue;
        }
        if (view.status === 'running' && changed.length === 0 && e.type === 'WorkflowStarted' && !tty && !o.json)
          line(() => printLine(`${view.name || 'workflow'} ${executionId} running`));
        if (changed.length > 0) {
          const lines = o.json || tty ? [] : changed.map((id) => stepLine(view.steps.get(id)!, Date.now()));
          line(() => lines.forEach((l) => printLine(l)));
        }
      }
      if (timedOut) throw timeoutError();
      const last = body.events[body.events.length - 1];
      if (!body.next || !last) break;
      after = last.revision;
    }
    for (const f of held) f();
    if (tty) {
      draw();
      timer = setInterval(draw, 100);
    }
    if (!view.ended) {
      for await (const e of liveEvents(api, {
        after: view.lastPosition,
        streamPrefixes: [stream],
        signal: ac.signal,
      })) {
        if (e.streamId !== stream) continue;
        if (o.json) printLine(JSON.stringify(e));
        onChange(view.apply(e));
        if (view.ended) break;
      }
      if (!view.ended && timedOut) throw timeoutError();
      if (!view.ended)
        throw new CliError(
          ac.signal.aborted
            ? 'stopped watching (the execution goes on)'
            : 'the event stream ended before the execution did',
          ac.signal.aborted ? EXIT.ok : EXIT.server,
        );
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
    clearTimeout(deadline);
    if (timer) clearInterval(timer);
    if (tty) draw();
    ac.abort();
  }
  if (!o.json) {
    const colour = view.status === 'completed' ? green : view.status === 'failed' ? red : yellow;
    if (!tty) printLine(renderView(view, Date.now())[0]);
    printLine(colour(`${view.status}${view.error ? `: ${view.error}` : ''}`));
  } else {
    // One more JSON line after the events: the outcome.
    printLine(
      JSON.stringify({ execution_id: executionId, status: view.status, ...(view.error ? { error: view.error } : {}) }),
    );
  }
  if (view.status !== 'completed') process.exitCode = EXIT.failed;
}
