#!/usr/bin/env node
/**
 * switchyard: the command-line client of the Switchyard gateway (`npx switchyard --help`).
 * Errors print the problem document's title, detail and correlation id on stderr; exit codes
 * are listed in errors.ts and in the help.
 */
import { CommanderError } from 'commander';
import { buildProgram } from './commands.js';
import { CliError, describeError, EXIT } from './errors.js';
import { terminalSafe } from './output.js';

// A reader that stops early (`| head`) closes the pipe: what it did not read is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(EXIT.ok);
  throw err;
});

const program = buildProgram().exitOverride();
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end here with code 0; a usage error was already printed by commander.
    process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else if (err instanceof CliError) {
    process.stderr.write(`${terminalSafe(describeError(err))}\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(
      `${terminalSafe(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)}\n`,
    );
    process.exitCode = EXIT.server;
  }
}
