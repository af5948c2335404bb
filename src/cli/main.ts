import { main } from './program.js';

// `banger` entry point (bin/banger imports this).
process.exitCode = await main(process.argv.slice(2));
