import { main } from './fake-firecracker.js';

// Entry point of the fake firecracker binary used by driver tests.
main(process.argv.slice(2));
