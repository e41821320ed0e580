/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Reads flusso's definition table and compiles what it holds.
 *
 * flusso.definitions holds each index's name and JSON definition; it is an
 * extension configuration table, so pg_dump keeps it.  This file reads it
 * through SPI (the caller connects) and turns a stored definition into a
 * checked model.  It never writes: api.c does, and the worker keeps its
 * own progress in flusso.index_state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "definition.h"

static Oid	owner_saved_user;
static int	owner_saved_sec;

static Oid
catalog_owner(void)
{
	Oid			nsp = get_namespace_oid("flusso", false);
	Oid			relid = get_relname_relid("definitions", nsp);
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for flusso.definitions");
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/* Not nested.  An error in between is fine: aborting restores the user. */
void
flusso_catalog_owner_enter(void)
{
	GetUserIdAndSecContext(&owner_saved_user, &owner_saved_sec);
	SetUserIdAndSecContext(catalog_owner(), owner_saved_sec | SECURITY_LOCAL_USERID_CHANGE);
}

void
flusso_catalog_owner_leave(void)
{
	SetUserIdAndSecContext(owner_saved_user, owner_saved_sec);
}

IndexDef *
flusso_definition_compile(const char *name, const char *json, bool report_warnings)
{
	IndexDef   *def;
	DefError	err;

	if (!flusso_def_parse(name, json, &def, &err))
		flusso_def_raise(&err);
	flusso_def_check(def, report_warnings);
	return def;
}

char *
flusso_definition_json(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		isnull;
	Datum		d;
	int			rc;

	flusso_catalog_owner_enter();
	rc = SPI_execute_with_args("SELECT definition::text FROM flusso.definitions WHERE name = $1",
							   1, argtypes, values, NULL, true, 1);
	flusso_catalog_owner_leave();
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read flusso.definitions");
	if (SPI_processed == 0)
		return NULL;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return TextDatumGetCString(d);
}

IndexDef *
flusso_definition_load(const char *name, bool missing_ok)
{
	char	   *json = flusso_definition_json(name);

	if (json == NULL)
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("index \"%s\" does not exist", name),
				 errhint("flusso.indexes lists the indexes; flusso.create_index creates one.")));
	}
	return flusso_definition_compile(name, json, false);
}

List *
flusso_definition_names(void)
{
	List	   *names = NIL;
	uint64		i;

	if (SPI_execute("SELECT name FROM flusso.definitions ORDER BY name", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read flusso.definitions");
	for (i = 0; i < SPI_processed; i++)
		names = lappend(names, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	return names;
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
