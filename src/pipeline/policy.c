/*-------------------------------------------------------------------------
 *
 * policy.c
 *	  What happens to a document that cannot be written: the index's failure
 *	  policy, and the dead letters kept, written and settled.
 *
 * A document OpenSearch rejects, one larger than flusso.batch_bytes, or one
 * that cannot be built goes to its index's policy (the definition's
 * on_error, else flusso.on_error): stop stops the index, skip counts and
 * logs it, dead_letter keeps its _id, error and body for
 * flusso.dead_letters.  Dead letters are kept in the engine's memory and
 * written by the unit of work that follows (eng_flush_dead_letters); a
 * dead letter goes once its document is acknowledged (ship.c tells which
 * with eng_settle_letters).
 *
 * It must not send anything, nor decide what a request's outcome is:
 * ship.c does, and hands the rejected documents here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "base/settings.h"
#include "pipeline/policy.h"

static int
policy_of(IndexRuntime *ix)
{
	return ix->def && ix->def->on_error >= 0 ? ix->def->on_error : flusso_on_error;
}

static void
dead_letter(Engine *eng, IndexRuntime *ix, int generation, const char *id, const char *error,
			const char *doc, size_t doclen)
{
	MemoryContext old = MemoryContextSwitchTo(eng->cxt);
	List	   *row = list_make5(pstrdup(ix->name), pstrdup(id), psprintf("%d", generation),
								 pstrdup(error), doc ? pnstrdup(doc, doclen) : NULL);

	row = lappend(row, psprintf("%u", ix->owner));
	eng->dead_letters = lappend(eng->dead_letters, row);
	ix->has_dead_letters = true;
	MemoryContextSwitchTo(old);
}

void
eng_reject(Engine *eng, IndexRuntime *ix, int generation, const char *id, const char *error,
		   const char *public_error, const char *doc, size_t doclen)
{
	char	   *message = psprintf("document \"%s\" of index \"%s\" rejected: %s", id, ix->name, error);
	char	   *public_message = psprintf("a document of index \"%s\" was rejected: %s", ix->name,
										  public_error);

	switch (policy_of(ix))
	{
		case FLUSSO_ON_ERROR_STOP:
			flusso_index_set_error_public(ix, message, public_message, true);
			break;
		case FLUSSO_ON_ERROR_SKIP:
			flusso_observer->on_error(ix->name, message, public_message);
			eng_log_limited(eng, LOG, "flusso skipped a document: %s", message);
			break;
		case FLUSSO_ON_ERROR_DEAD_LETTER:
			flusso_observer->on_error(ix->name, message, public_message);
			dead_letter(eng, ix, generation, id, error, doc, doclen);
			break;
	}
}

void
eng_settle_letters(Engine *eng, IndexRuntime *ix, List *ids, TimestampTz sent_at)
{
	MemoryContext old = MemoryContextSwitchTo(eng->cxt);
	SettledLetters *s = palloc(sizeof(SettledLetters));
	ListCell   *lc;

	s->index = pstrdup(ix->name);
	s->ids = NIL;
	foreach(lc, ids)
		s->ids = lappend(s->ids, pstrdup(lfirst(lc)));
	s->sent_at = sent_at;
	eng->settled_letters = lappend(eng->settled_letters, s);
	MemoryContextSwitchTo(old);
}

/* Delete the dead letters of documents OpenSearch has since acknowledged. */
static void
delete_settled_letters(Engine *eng)
{
	ListCell   *lc;

	foreach(lc, eng->settled_letters)
	{
		SettledLetters *s = lfirst(lc);
		Oid			types[3] = {TEXTOID, TEXTARRAYOID, TIMESTAMPTZOID};
		Datum		values[3];
		Datum	   *ids = palloc(sizeof(Datum) * list_length(s->ids));
		ListCell   *ic;
		int			n = 0;

		foreach(ic, s->ids)
			ids[n++] = CStringGetTextDatum(lfirst(ic));
		values[0] = CStringGetTextDatum(s->index);
		values[1] = PointerGetDatum(construct_array(ids, n, TEXTOID, -1, false, TYPALIGN_INT));
		values[2] = TimestampTzGetDatum(s->sent_at);
		if (SPI_execute_with_args("DELETE FROM flusso.dead_letters WHERE index_name OPERATOR(pg_catalog.=) $1 "
								  "AND document_id OPERATOR(pg_catalog.=) ANY ($2) "
								  "AND failed_at OPERATOR(pg_catalog.<) $3",
								  3, types, values, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete from flusso.dead_letters");
	}
}

void
eng_flush_dead_letters(Engine *eng)
{
	ListCell   *lc;

	delete_settled_letters(eng);
	foreach(lc, eng->dead_letters)
	{
		List	   *row = lfirst(lc);
		Oid			types[6] = {TEXTOID, TEXTOID, INT4OID, TEXTOID, TEXTOID, REGROLEOID};
		Datum		values[6];
		char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

		values[0] = CStringGetTextDatum(list_nth(row, 0));
		values[1] = CStringGetTextDatum(list_nth(row, 1));
		values[2] = Int32GetDatum(atoi(list_nth(row, 2)));
		values[3] = CStringGetTextDatum(list_nth(row, 3));
		nulls[4] = list_nth(row, 4) ? ' ' : 'n';
		values[4] = list_nth(row, 4) ? CStringGetTextDatum(list_nth(row, 4)) : (Datum) 0;
		values[5] = ObjectIdGetDatum(atooid(list_nth(row, 5)));
		/* a document rejected again replaces its earlier dead letter */
		if (SPI_execute_with_args("DELETE FROM flusso.dead_letters WHERE index_name OPERATOR(pg_catalog.=) $1 "
								  "AND document_id OPERATOR(pg_catalog.=) $2",
								  2, types, values, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete from flusso.dead_letters");
		if (SPI_execute_with_args("INSERT INTO flusso.dead_letters (index_name, document_id, generation, error, body, owner) "
								  "VALUES ($1, $2, $3, $4, $5, $6)", 6, types, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert into flusso.dead_letters");
	}
	eng_free_dead_letters(eng);
}
