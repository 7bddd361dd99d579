// Entry point of `ckpt` (bin/ckpt.js imports the compiled dist/src/cli/main.js).
import { registerCriuCommands } from './commands/criu.js';
import { createProgram, runProgram } from './program.js';

const program = createProgram();
registerCriuCommands(program);
// The service commands (`up`, `worker`) come from src/cli/commands/service.ts once it exists:
//   registerServiceCommands(program);
await runProgram(program, process.argv);
