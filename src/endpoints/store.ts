import type { Transaction } from 'kysely';
import type { Db } from '../db/database.ts';
import type { Database, Endpoint } from '../db/schema.ts';
import { newSecret } from '../delivery/sign.ts';
import { newId } from '../ids.ts';

/**
 * The one endpoint for `url`, registered with a new secret on first use. Runs inside the
 * submitting transaction, so a rolled-back submission leaves no endpoint behind.
 *
 * It reads first and inserts only on a miss: an upsert would lock the endpoint row and so
 * serialize every submission to a busy endpoint. When two first submissions race, the loser's
 * insert waits for the winner's commit, does nothing, and the second read finds the row.
 */
export async function endpointForUrl(trx: Transaction<Database> | Db, url: string): Promise<string> {
  const found = await trx.selectFrom('endpoints').select('id').where('url', '=', url).executeTakeFirst();
  if (found) return found.id;
  const inserted = await trx
    .insertInto('endpoints')
    .values({ id: newId('endpoint'), url, secret: newSecret() })
    .onConflict((oc) => oc.column('url').doNothing())
    .returning('id')
    .executeTakeFirst();
  if (inserted) return inserted.id;
  const raced = await trx.selectFrom('endpoints').select('id').where('url', '=', url).executeTakeFirstOrThrow();
  return raced.id;
}

export async function getEndpoint(db: Db, id: string): Promise<Endpoint | undefined> {
  return db.selectFrom('endpoints').selectAll().where('id', '=', id).executeTakeFirst();
}
