// Entry point of `ckpt` (bin/ckpt.js imports the compiled dist/src/cli/main.js).
import { registerCriuCommands } from './commands/criu.js';
import { registerServiceCommands } from './commands/service.js';
import { createProgram, runProgram } from './program.js';

const program = createProgram();
registerCriuCommands(program);
registerServiceCommands(program);
await runProgram(program, process.argv);
