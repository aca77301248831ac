import { loadConfig, ConfigError } from '../config/index.ts';
import { openDatabase, migrateLatest, rollback } from './index.ts';

const command = process.argv[2];
try {
  const config = loadConfig();
  const db = openDatabase(config.databaseUrl);
  try {
    if (command === 'migrate') {
      const applied = await migrateLatest(db);
      console.log(applied.length ? `Applied: ${applied.join(', ')}` : 'Already up to date.');
    } else if (command === 'rollback') {
      const undone = await rollback(db, process.argv.includes('--all'));
      console.log(undone.length ? `Rolled back: ${undone.join(', ')}` : 'Nothing to roll back.');
    } else {
      console.error('Usage: db/cli.ts migrate | rollback [--all]');
      process.exitCode = 2;
    }
  } finally {
    await db.destroy();
  }
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exitCode = 1;
}
