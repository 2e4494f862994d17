/**
 * A server process this launcher did not spawn but adopted (its PostgreSQL or nats-server, left
 * running by a killed launcher): no child handle, so it is known and stopped by its pid.
 */

/** Send a signal (0: only ask whether it exists); false when the process is gone or not ours to signal. */
export function signalIfAlive(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Stop it with `signal`, wait for it to go (polling every `pollMs`), SIGKILL it after `graceMs`. */
export async function stopAdoptedProcess(
  pid: number,
  o: { readonly signal: NodeJS.Signals; readonly graceMs: number; readonly pollMs: number },
): Promise<void> {
  if (!signalIfAlive(pid, o.signal)) return;
  for (const end = Date.now() + o.graceMs; Date.now() < end;) {
    await new Promise((r) => setTimeout(r, o.pollMs));
    if (!signalIfAlive(pid, 0)) return;
  }
  signalIfAlive(pid, 'SIGKILL');
}

/**
 * Resolves (-1: the exit code of a process that is not our child cannot be read) once the adopted
 * process has gone, asked to or not: the launcher's supervisor restarts an adopted server that
 * exits, as it does one it started.
 */
export function adoptedExit(pid: number, pollMs = 1_000): Promise<number> {
  return new Promise((resolve) => {
    const poll = setInterval(() => {
      if (signalIfAlive(pid, 0)) return;
      clearInterval(poll);
      resolve(-1);
    }, pollMs);
    poll.unref();
  });
}
