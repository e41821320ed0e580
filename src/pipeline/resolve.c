/*-------------------------------------------------------------------------
 *
 * resolve.c
 *	  Maps changed rows to the documents they affect.
 *
 * A change to a row of a table an index reads arrives as the values of the
 * watched columns in its old and new image.  For the root table those are
 * the document's key; for a child they are join values, which the watch's
 * generated statement maps up through the current rows of the parents to
 * root keys, for a whole batch of images at once.  The keys land in a set,
 * so N changes to one document build it once.
 *
 * This file owns the key set, the document _id of a key, and the running
 * of resolve statements.  It must not decide what a change is (capture.c)
 * nor build documents.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "base/strset.h"
#include "pipeline/resolve.h"

struct FlussoKeySet
{
	MemoryContext cxt;			/* the set, the list and the strings */
	FlussoStringSet *set;
	List	   *order;			/* ids in insertion order */
};

FlussoKeySet *
flusso_keyset_create(MemoryContext parent)
{
	FlussoKeySet *ks = MemoryContextAllocZero(parent, sizeof(FlussoKeySet));

	ks->cxt = AllocSetContextCreate(parent, "flusso keys", ALLOCSET_DEFAULT_SIZES);
	ks->set = flusso_strset_create(ks->cxt, 256);
	return ks;
}

bool
flusso_keyset_add(FlussoKeySet *ks, const char *id)
{
	char	   *copy = flusso_strset_add(ks->set, id);
	MemoryContext old;

	if (copy == NULL)
		return false;
	old = MemoryContextSwitchTo(ks->cxt);
	ks->order = lappend(ks->order, copy);
	MemoryContextSwitchTo(old);
	return true;
}

int
flusso_keyset_count(FlussoKeySet *ks)
{
	return list_length(ks->order);
}

void
flusso_keyset_reset(FlussoKeySet *ks)
{
	MemoryContextReset(ks->cxt);
	ks->set = flusso_strset_create(ks->cxt, 256);
	ks->order = NIL;
}

List *
flusso_keyset_ids(FlussoKeySet *ks)
{
	return ks->order;
}

char *
flusso_id_join(char **parts, int nparts)
{
	StringInfoData out;
	int			i;

	if (nparts == 1)
		return pstrdup(parts[0]);
	initStringInfo(&out);
	for (i = 0; i < nparts; i++)
	{
		const char *p;

		if (i > 0)
			appendStringInfoChar(&out, '|');
		for (p = parts[i]; *p; p++)
		{
			if (*p == '|' || *p == '\\')
				appendStringInfoChar(&out, '\\');
			appendStringInfoChar(&out, *p);
		}
	}
	return out.data;
}

/*
 * Split a document _id into its key parts: for one key column the _id is
 * the value itself; for several, the parts are joined by '|' with '|' and
 * '\' escaped by a backslash.
 */
List *
flusso_id_split(const char *id, int nparts)
{
	List	   *parts = NIL;
	StringInfoData part;
	const char *p;

	if (nparts == 1)
		return list_make1(pstrdup(id));
	initStringInfo(&part);
	for (p = id; *p; p++)
	{
		if (*p == '\\' && p[1] != '\0')
			appendStringInfoChar(&part, *++p);
		else if (*p == '|')
		{
			parts = lappend(parts, pstrdup(part.data));
			resetStringInfo(&part);
		}
		else
			appendStringInfoChar(&part, *p);
	}
	parts = lappend(parts, pstrdup(part.data));
	if (list_length(parts) != nparts)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("\"%s\" is not a document id of this index", id),
				 errdetail("The index has a key of %d columns; an id joins them with \"|\", escaping \"|\" and \"\\\" with a backslash.",
						   nparts)));
	return parts;
}

static Datum
text_array(List *values)
{
	int			n = list_length(values);
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));
	int			dims[1] = {n};
	int			lbs[1] = {1};
	ListCell   *lc;
	int			i = 0;

	foreach(lc, values)
	{
		nulls[i] = lfirst(lc) == NULL;
		elems[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(lfirst(lc));
		i++;
	}
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  TEXTOID, -1, false, TYPALIGN_INT));
}

Datum *
flusso_keyset_params(List *ids, int nkeycols)
{
	List	  **cols = palloc0(sizeof(List *) * nkeycols);
	Datum	   *params = palloc(sizeof(Datum) * nkeycols);
	ListCell   *lc;
	int			i;

	foreach(lc, ids)
	{
		List	   *parts = flusso_id_split(lfirst(lc), nkeycols);

		for (i = 0; i < nkeycols; i++)
			cols[i] = lappend(cols[i], list_nth(parts, i));
	}
	for (i = 0; i < nkeycols; i++)
		params[i] = text_array(cols[i]);
	return params;
}

/* Images whose watched values are the key: no statement needed. */
static void
resolve_direct(FlussoWatch *w, List *images, FlussoKeySet *out, int nkeycols)
{
	char	  **parts = palloc(sizeof(char *) * nkeycols);
	ListCell   *lc;

	foreach(lc, images)
	{
		char	  **values = lfirst(lc);
		bool		complete = true;
		int			i;

		for (i = 0; i < nkeycols; i++)
		{
			parts[i] = values[w->key_map[i]];
			complete &= parts[i] != NULL;
		}
		if (complete)
			flusso_keyset_add(out, flusso_id_join(parts, nkeycols));
	}
}

void
flusso_resolve(FlussoWatch *w, SPIPlanPtr plan, List *images, FlussoKeySet *out,
			   int nkeycols)
{
	Datum	   *params;
	char	  **parts;
	uint64		r;
	int			i;
	int			rc;

	if (images == NIL)
		return;
	if (w->resolve_sql == NULL)
	{
		resolve_direct(w, images, out, nkeycols);
		return;
	}
	params = palloc(sizeof(Datum) * w->ncols);
	for (i = 0; i < w->ncols; i++)
	{
		List	   *col = NIL;
		ListCell   *lc;

		foreach(lc, images)
			col = lappend(col, ((char **) lfirst(lc))[i]);
		params[i] = text_array(col);
	}
	rc = plan ? SPI_execute_plan(plan, params, NULL, true, 0) :
		SPI_execute_with_args(w->resolve_sql, w->ncols, flusso_sql_array_types(w->ncols),
							  params, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "resolve statement for %s failed: %s", w->columns_text,
			 SPI_result_code_string(rc));
	parts = palloc(sizeof(char *) * nkeycols);
	for (r = 0; r < SPI_processed; r++)
	{
		bool		complete = true;

		for (i = 0; i < nkeycols; i++)
		{
			parts[i] = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, i + 1);
			complete &= parts[i] != NULL;
		}
		if (complete)
			flusso_keyset_add(out, flusso_id_join(parts, nkeycols));
	}
	SPI_freetuptable(SPI_tuptable);
}
