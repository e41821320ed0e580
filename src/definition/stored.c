/*-------------------------------------------------------------------------
 *
 * stored.c
 *	  Reads flusso's definition table and compiles what it holds.
 *
 * flusso.definitions holds each index's name, JSON definition and owner; it
 * is an extension configuration table, so pg_dump keeps it.  This file
 * reads it through SPI (the caller connects), as the extension's owner with
 * the fixed search_path, and turns a stored definition into a checked
 * model, compiled with the rights of the index's owner (rights.c).  It
 * never writes: api.c does, and the worker keeps its own progress in
 * flusso.index_state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "access/genam.h"
#include "access/table.h"
#include "utils/fmgroids.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "base/flusso.h"
#include "base/rights.h"
#include "definition/check.h"
#include "definition/definition.h"
#include "definition/parse.h"
#include "definition/stored.h"

/* extversion of an extension, read from pg_extension. */
static char *
extension_version(Oid ext)
{
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *version = NULL;

	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ext));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = TextDatumGetCString(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
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

StoredDefinition *
flusso_definition_stored(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	StoredDefinition *sd;
	FlussoRights rights;
	bool		isnull;
	int			rc;

	flusso_rights_as_extension(&rights);
	rc = SPI_execute_with_args("SELECT d.definition::pg_catalog.text, d.owner::pg_catalog.oid "
							   "FROM flusso.definitions d WHERE d.name OPERATOR(pg_catalog.=) $1",
							   1, argtypes, values, NULL, true, 1);
	flusso_rights_restore(&rights);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read flusso.definitions");
	if (SPI_processed == 0)
		return NULL;
	sd = palloc0(sizeof(StoredDefinition));
	sd->name = pstrdup(name);
	sd->json = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	sd->owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	return sd;
}

static void
no_such_index(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("index \"%s\" does not exist", name),
			 errhint("flusso.indexes lists the indexes; flusso.create_index creates one.")));
}

/* Compile a stored definition with its owner's rights (lookups, USAGE on schemas). */
IndexDef *
flusso_definition_compile_stored(StoredDefinition *sd)
{
	FlussoRights rights;
	IndexDef   *def;

	flusso_rights_as_owner(sd->owner, &rights);
	def = flusso_definition_compile(sd->name, sd->json, false);
	flusso_rights_restore(&rights);
	def->owner = sd->owner;
	return def;
}

IndexDef *
flusso_definition_load(const char *name, bool missing_ok)
{
	StoredDefinition *sd = flusso_definition_stored(name);

	if (sd == NULL)
	{
		if (!missing_ok)
			no_such_index(name);
		return NULL;
	}
	return flusso_definition_compile_stored(sd);
}

StoredDefinition *
flusso_definition_managed(const char *name, const char *action)
{
	StoredDefinition *sd = flusso_definition_stored(name);

	if (sd == NULL)
		no_such_index(name);
	flusso_rights_check_owner(name, sd->owner, action);
	return sd;
}

IndexDef *
flusso_definition_load_managed(const char *name, const char *action)
{
	return flusso_definition_compile_stored(flusso_definition_managed(name, action));
}

void
flusso_require_current_sql(void)
{
	Oid			ext = get_extension_oid(FLUSSO_EXTENSION_NAME, true);
	char	   *version = OidIsValid(ext) ? extension_version(ext) : NULL;

	if (version != NULL && strcmp(version, FLUSSO_VERSION) == 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("flusso's SQL objects in this database are at version %s, the library at %s",
					version ? version : "(none)", FLUSSO_VERSION),
			 errhint("Run ALTER EXTENSION flusso UPDATE.")));
}
