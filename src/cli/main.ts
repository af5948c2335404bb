import { main } from './program.js';

// `banger` entry point: scripts/build.mjs bundles it to dist/cli-main.cjs, which bin/banger runs
// through dist/cli.cjs (src/cli/launch.ts: from V8's code cache).

// A reader that went away (`banger … | head`) ends the command quietly, as
// SIGPIPE ends other tools (status 128 + 13), instead of with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(141);
    throw error;
  });
}

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
