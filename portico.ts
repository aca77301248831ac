import { main } from './app/cli/portico.ts';

/** The operator CLI (`npm run portico -- <command>`; built: `node dist/portico.js <command>`). app/cli/portico.ts. */
await main();
