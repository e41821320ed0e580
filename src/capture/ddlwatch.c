/*-------------------------------------------------------------------------
 *
 * ddlwatch.c
 *	  Noticing DDL on the tables the indexes read.
 *
 * The worker's prepared plans name tables by OID, so a renamed table or a
 * dropped column may go unnoticed until the next reload compiles the
 * definitions again by name.  A relcache callback flags every
 * invalidation of a watched table (they arrive as the decoder passes the
 * DDL, or when the worker's next transaction starts); the flag makes the
 * engine compare a signature of each table (schema, name, and every
 * column's name and type) with the one taken at load, and reload the
 * definitions only when it differs.  VACUUM and ANALYZE invalidate too, but
 * change no signature, so they cost one catalog lookup per table.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "lib/stringinfo.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "capture/ddlwatch.h"

static Oid *watched = NULL;
static int	nwatched = 0;
static char *signature = NULL;
static bool touched = false;
static bool registered = false;

static void
relcache_changed(Datum arg, Oid relid)
{
	int			i;

	if (!OidIsValid(relid))
	{
		touched = true;
		return;
	}
	for (i = 0; i < nwatched; i++)
		if (watched[i] == relid)
			touched = true;
}

static void
append_table(StringInfo buf, Oid relid)
{
	HeapTuple	rel = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Form_pg_class form;
	int			natts;
	int			a;

	if (!HeapTupleIsValid(rel))
	{
		appendStringInfo(buf, "%u:dropped;", relid);
		return;
	}
	form = (Form_pg_class) GETSTRUCT(rel);
	appendStringInfo(buf, "%u:%u.%s(", relid, form->relnamespace, NameStr(form->relname));
	natts = form->relnatts;
	ReleaseSysCache(rel);
	for (a = 1; a <= natts; a++)
	{
		HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(a));
		Form_pg_attribute att;

		if (!HeapTupleIsValid(tup))
			continue;
		att = (Form_pg_attribute) GETSTRUCT(tup);
		if (!att->attisdropped)
			appendStringInfo(buf, "%s:%u:%d,", NameStr(att->attname), att->atttypid, att->atttypmod);
		ReleaseSysCache(tup);
	}
	appendStringInfoString(buf, ");");
}

static char *
current_signature(void)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < nwatched; i++)
		append_table(&buf, watched[i]);
	return buf.data;
}

void
flusso_ddl_remember(List *relids)
{
	ListCell   *lc;
	int			i = 0;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(relcache_changed, (Datum) 0);
		registered = true;
	}
	if (watched)
		pfree(watched);
	watched = MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * Max(1, list_length(relids)));
	foreach(lc, relids)
		watched[i++] = lfirst_oid(lc);
	nwatched = i;
	if (signature)
		pfree(signature);
	signature = MemoryContextStrdup(TopMemoryContext, current_signature());
	touched = false;
}

bool
flusso_ddl_touched(void)
{
	return touched;
}

bool
flusso_ddl_changed(void)
{
	char	   *now;
	bool		changed;

	if (!touched || signature == NULL)
		return false;
	touched = false;
	now = current_signature();
	changed = strcmp(now, signature) != 0;
	pfree(now);
	return changed;
}
