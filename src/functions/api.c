/*-------------------------------------------------------------------------
 *
 * api.c
 *	  The SQL functions that define indexes and show what they produce.
 *
 * create_index, alter_index and drop_index validate and store definitions
 * in flusso.definitions (the sync worker follows that table); pause,
 * resume and retry_dead_letters leave requests for the worker;
 * alter_index_owner hands an index over; preview, documents, explain,
 * document_ids, affected_documents and index_body run or show what a
 * definition generates.  Every function here runs in the caller's backend
 * and transaction, and must not talk to OpenSearch: that is the worker's
 * job.
 *
 * Rights (rights.c): each function checks that the caller may manage the
 * index, reads and writes flusso's tables as the extension's owner with the
 * fixed search_path, and runs whatever the definition makes run with the
 * rights of the index's owner.  A new definition's names are resolved under
 * the caller's search_path, once, and stored resolved.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "base/guard.h"
#include "base/rights.h"
#include "base/settings.h"
#include "base/settingutil.h"
#include "definition/check.h"
#include "definition/definition.h"
#include "definition/mapping.h"
#include "definition/resolved.h"
#include "definition/sqlgen.h"
#include "definition/stored.h"
#include "pipeline/resolve.h"
#include "status/status.h"

static char *
arg_text(FunctionCallInfo fcinfo, int i, const char *what)
{
	if (PG_ARGISNULL(i))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(i));
}

static char *
arg_jsonb_text(FunctionCallInfo fcinfo, int i)
{
	Jsonb	   *jb;

	if (PG_ARGISNULL(i))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the index definition must not be null"),
				 errhint("Pass a jsonb object such as '{\"table\": \"public.users\"}'.")));
	jb = PG_GETARG_JSONB_P(i);
	return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
}

/* Prepare the generated statements once, as the worker will, as a last check of the whole. */
static void
prepare_generated(IndexDef *def)
{
	FlussoRights rights;
	SPIPlanPtr	plan;

	flusso_rights_as_owner(def->owner, &rights);
	plan = SPI_prepare(flusso_sql_build(def), list_length(def->key),
					   flusso_sql_array_types(list_length(def->key)));
	flusso_rights_restore(&rights);
	if (plan == NULL)
		elog(ERROR, "the build statement of index \"%s\" does not prepare: %s",
			 def->name, SPI_result_code_string(SPI_result));
}

static void
check_index_count(void)
{
	if (SPI_execute("SELECT pg_catalog.count(*) FROM flusso.definitions", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not count flusso.definitions");
	if (atoi(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)) >= flusso_max_indexes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("flusso keeps status for at most %d indexes", flusso_max_indexes),
				 errhint("Raise flusso.max_indexes and restart the server.")));
}

/* Store a checked definition, as the extension's owner. */
static void
store_definition(IndexDef *def, const char *json, bool create)
{
	Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, REGROLEOID};
	Datum		values[4];
	FlussoRights rights;
	const char *sql = create ?
		"INSERT INTO flusso.definitions (name, definition, root_table, owner) "
		"VALUES ($1, $2::pg_catalog.jsonb, $3, $4)" :
		"UPDATE flusso.definitions SET definition = $2::pg_catalog.jsonb, root_table = $3, "
		"updated_at = pg_catalog.now() WHERE name OPERATOR(pg_catalog.=) $1";

	values[0] = CStringGetTextDatum(def->name);
	values[1] = CStringGetTextDatum(json);
	values[2] = CStringGetTextDatum(def->root->table.text);
	values[3] = ObjectIdGetDatum(def->owner);
	flusso_rights_as_extension(&rights);
	if (create)
		check_index_count();
	if (SPI_execute_with_args(sql, create ? 4 : 3, argtypes, values, NULL, false, 0) !=
		(create ? SPI_OK_INSERT : SPI_OK_UPDATE))
		elog(ERROR, "could not store the definition of index \"%s\"", def->name);
	flusso_rights_restore(&rights);
}

/* The owner of an index must be able to read every table it reads. */
static void
check_owner_access(IndexDef *def)
{
	char	   *problem = superuser_arg(def->owner) ? NULL : flusso_def_access(def, def->owner);

	if (problem)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to index \"%s\": %s", def->name, problem),
				 errdetail("An index makes the rows of its tables searchable in OpenSearch, and reads them with the rights of its owner, role \"%s\".",
						   flusso_role_name(def->owner)),
				 errhint("The owner of an index must be able to read every table the index reads.")));
}

/* Check a new definition with its owner's rights, under the caller's search_path. */
static IndexDef *
compile_new(const char *name, const char *json, Oid owner)
{
	FlussoRights rights;
	IndexDef   *def;

	flusso_rights_as_owner_resolving(owner, &rights);
	def = flusso_definition_compile(name, json, true);
	flusso_rights_restore(&rights);
	def->owner = owner;
	return def;
}

/*
 * What would keep flusso from syncing this database, said at CREATE
 * EXTENSION and at every create_index: the log alone is read too late.
 */
static void
warn_environment(void)
{
	bool		listed = false;
	ListCell   *lc;

	if (flusso_shared == NULL)
		ereport(WARNING,
				(errmsg("flusso is not loaded: nothing defined here will be synced"),
				 errhint("Add flusso to shared_preload_libraries in postgresql.conf and restart the server.")));
	if (wal_level < WAL_LEVEL_LOGICAL)
		ereport(WARNING,
				(errmsg("flusso cannot sync: wal_level is \"%s\"", GetConfigOption("wal_level", false, false)),
				 errdetail("flusso decodes the WAL, which needs wal_level = logical."),
				 errhint("Set wal_level = logical in postgresql.conf and restart the server.")));
	foreach(lc, flusso_split_list(flusso_database))
		listed |= strcmp(lfirst(lc), get_database_name(MyDatabaseId)) == 0;
	if (!listed)
		ereport(WARNING,
				(errmsg("no flusso sync worker serves database \"%s\": the indexes defined here are not synced",
						get_database_name(MyDatabaseId)),
				 errdetail("flusso.database is \"%s\".", flusso_database),
				 errhint("Add the database to flusso.database and reload the configuration (SELECT pg_reload_conf()).")));
}

/* flusso._check_environment(): the install and upgrade scripts call it. */
PG_FUNCTION_INFO_V1(flusso_check_environment);
Datum
flusso_check_environment(PG_FUNCTION_ARGS)
{
	warn_environment();
	PG_RETURN_VOID();
}

/* flusso.role only narrows: a new definition must be readable by it too. */
static void
check_sync_role_access(IndexDef *def)
{
	Oid			role;
	char	   *problem;

	if (flusso_role == NULL || flusso_role[0] == '\0')
		return;
	role = get_role_oid(flusso_role, true);
	problem = OidIsValid(role) ? flusso_def_access(def, role) :
		psprintf("flusso.role \"%s\" does not exist", flusso_role);
	if (problem)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("index \"%s\" could not be synced: %s", def->name, problem),
				 errdetail("flusso.role is set: every table an index reads must also be readable by it."),
				 errhint("GRANT what is missing to %s, or change flusso.role.", quote_identifier(flusso_role))));
}

static Datum
define_index(FunctionCallInfo fcinfo, bool create)
{
	char	   *name = arg_text(fcinfo, 0, "the index name");
	char	   *json = arg_jsonb_text(fcinfo, 1);
	StoredDefinition *sd;
	IndexDef   *def;

	flusso_status_require_preload();
	flusso_require_current_sql();
	SPI_connect();
	sd = flusso_definition_stored(name);
	if (create && sd)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("index \"%s\" already exists", name),
				 errhint("Use flusso.alter_index to change its definition, or flusso.drop_index first.")));
	if (!create && !sd)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("index \"%s\" does not exist", name),
				 errhint("Use flusso.create_index to create it.")));
	if (!create)
		flusso_rights_check_owner(name, sd->owner, "alter");
	def = compile_new(name, json, create ? GetUserId() : sd->owner);
	check_owner_access(def);
	check_sync_role_access(def);
	warn_environment();
	prepare_generated(def);
	store_definition(def, flusso_def_resolved_json(def, json), create);
	SPI_finish();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(flusso_create_index);
Datum
flusso_create_index(PG_FUNCTION_ARGS)
{
	return define_index(fcinfo, true);
}

PG_FUNCTION_INFO_V1(flusso_alter_index);
Datum
flusso_alter_index(PG_FUNCTION_ARGS)
{
	return define_index(fcinfo, false);
}

/* Leave a request for the sync worker, as the extension's owner. */
static void
insert_request(const char *name, const char *action)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(name), CStringGetTextDatum(action)};
	FlussoRights rights;

	flusso_rights_as_extension(&rights);
	if (SPI_execute_with_args("INSERT INTO flusso.requests (name, action) VALUES ($1, $2)",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record the request to %s index \"%s\"", action, name);
	flusso_rights_restore(&rights);
}

PG_FUNCTION_INFO_V1(flusso_drop_index);
Datum
flusso_drop_index(PG_FUNCTION_ARGS)
{
	char	   *name = arg_text(fcinfo, 0, "the index name");
	bool		drop_remote = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	FlussoRights rights;

	flusso_require_current_sql();
	SPI_connect();
	(void) flusso_definition_managed(name, "drop");
	flusso_rights_as_extension(&rights);
	if (SPI_execute_with_args("DELETE FROM flusso.definitions WHERE name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from flusso.definitions");
	flusso_rights_restore(&rights);
	insert_request(name, drop_remote ? "drop_remote" : "drop");
	SPI_finish();
	PG_RETURN_VOID();
}

/* pause, resume, retry_dead_letters: a request, once the caller may manage the index. */
static void
managed_request(FunctionCallInfo fcinfo, const char *action, const char *verb)
{
	char	   *name = arg_text(fcinfo, 0, "the index name");

	flusso_require_current_sql();
	SPI_connect();
	(void) flusso_definition_managed(name, verb);
	insert_request(name, action);
	SPI_finish();
}

PG_FUNCTION_INFO_V1(flusso_pause);
Datum
flusso_pause(PG_FUNCTION_ARGS)
{
	managed_request(fcinfo, "pause", "pause");
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(flusso_resume);
Datum
flusso_resume(PG_FUNCTION_ARGS)
{
	managed_request(fcinfo, "resume", "resume");
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(flusso_retry_dead_letters);
Datum
flusso_retry_dead_letters(PG_FUNCTION_ARGS)
{
	char	   *name = arg_text(fcinfo, 0, "the index name");
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	FlussoRights rights;
	bool		isnull;
	int64		n;

	managed_request(fcinfo, "retry_dead_letters", "retry the dead letters of");
	SPI_connect();
	flusso_rights_as_extension(&rights);
	if (SPI_execute_with_args("SELECT pg_catalog.count(*) FROM flusso.dead_letters "
							  "WHERE index_name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not count flusso.dead_letters");
	flusso_rights_restore(&rights);
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PG_RETURN_INT64(n);
}

/*
 * flusso.alter_index_owner(name, new_owner): hand an index to another role.
 * Superusers only, like giving away any object one does not own; the new
 * owner must be able to read every table the index reads.  The worker
 * picks the change up at once: its statements run as the new owner.
 */
PG_FUNCTION_INFO_V1(flusso_alter_index_owner);
Datum
flusso_alter_index_owner(PG_FUNCTION_ARGS)
{
	char	   *name = arg_text(fcinfo, 0, "the index name");
	Oid			owner = PG_GETARG_OID(1);
	Oid			argtypes[2] = {TEXTOID, REGROLEOID};
	Datum		values[2] = {CStringGetTextDatum(name), ObjectIdGetDatum(owner)};
	StoredDefinition *sd;
	IndexDef   *def;
	FlussoRights rights;

	flusso_require_current_sql();
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to change the owner of index \"%s\"", name),
				 errhint("Only superusers may hand an index to another role.")));
	SPI_connect();
	sd = flusso_definition_stored(name);
	if (sd == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("index \"%s\" does not exist", name),
				 errhint("flusso.indexes lists the indexes.")));
	def = flusso_definition_compile_stored(sd);	/* as the current owner */
	def->owner = owner;
	check_owner_access(def);
	flusso_rights_as_extension(&rights);
	if (SPI_execute_with_args("UPDATE flusso.definitions SET owner = $2, updated_at = pg_catalog.now() "
							  "WHERE name OPERATOR(pg_catalog.=) $1",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE ||
		SPI_execute_with_args("UPDATE flusso.dead_letters SET owner = $2 "
							  "WHERE index_name OPERATOR(pg_catalog.=) $1",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not change the owner of index \"%s\"", name);
	flusso_rights_restore(&rights);
	SPI_finish();
	PG_RETURN_VOID();
}

/* Run the build statement for one key; the document or NULL. */
static char *
build_one(IndexDef *def, const char *id)
{
	int			n = list_length(def->key);
	Datum	   *values = flusso_keyset_params(list_make1((char *) id), n);
	bool		isnull;
	Datum		d;
	FlussoRights rights;
	int			rc;

	flusso_rights_as_owner(def->owner, &rights);
	rc = SPI_execute_with_args(flusso_sql_build(def), n, flusso_sql_array_types(n), values,
							   NULL, true, 0);
	flusso_rights_restore(&rights);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not run the build statement of index \"%s\"", def->name);
	if (SPI_processed == 0)
		return NULL;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}

PG_FUNCTION_INFO_V1(flusso_preview);
Datum
flusso_preview(PG_FUNCTION_ARGS)
{
	char	   *name = arg_text(fcinfo, 0, "the index name");
	char	   *id = arg_text(fcinfo, 1, "the document id");
	char	   *doc;
	MemoryContext caller = CurrentMemoryContext;

	flusso_require_current_sql();
	SPI_connect();
	doc = build_one(flusso_definition_load_managed(name, "preview"), id);
	if (doc)
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		doc = pstrdup(doc);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	if (doc == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(doc));
}

static void
append_watches(StringInfo out, IndexDef *def)
{
	ListCell   *lc;

	foreach(lc, flusso_sql_watches(def))
	{
		FlussoWatch *w = lfirst(lc);

		appendStringInfo(out, "\n\n-- change to %s (%s): ",
						 quote_qualified_identifier(get_namespace_name(get_rel_namespace(w->relid)),
													get_rel_name(w->relid)),
						 w->path[0] ? w->path : "root");
		if (w->resolve_sql == NULL)
			appendStringInfo(out, "the values of %s are the document keys", w->columns_text);
		else
			appendStringInfo(out, "resolved by\n%s", w->resolve_sql);
	}
}

PG_FUNCTION_INFO_V1(flusso_explain);
Datum
flusso_explain(PG_FUNCTION_ARGS)
{
	char	   *name = arg_text(fcinfo, 0, "the index name");
	StringInfoData out;
	IndexDef   *def;
	MemoryContext caller = CurrentMemoryContext;
	text	   *result;

	flusso_require_current_sql();
	SPI_connect();
	def = flusso_definition_load_managed(name, "explain");
	initStringInfo(&out);
	appendStringInfo(&out, "%s\n\n%s\n\n%s", flusso_sql_build(def),
					 flusso_sql_backfill(def, true), flusso_sql_backfill(def, false));
	append_watches(&out, def);
	MemoryContextSwitchTo(caller);
	result = cstring_to_text(out.data);
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}

PG_FUNCTION_INFO_V1(flusso_index_body_sql);
Datum
flusso_index_body_sql(PG_FUNCTION_ARGS)
{
	char	   *name = arg_text(fcinfo, 0, "the index name");
	char	   *body;
	MemoryContext caller = CurrentMemoryContext;
	Datum		result;

	flusso_require_current_sql();
	SPI_connect();
	body = flusso_index_body(flusso_definition_load_managed(name, "read the index body of"), NULL, 0);
	MemoryContextSwitchTo(caller);
	result = DirectFunctionCall1(jsonb_in, CStringGetDatum(body));
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/*
 * The start of a set-returning function over an index: the library's SQL
 * objects checked, the result's tuplestore made (srf_flags), SPI
 * connected, and the definition loaded for a caller who may manage the
 * index (raising 42501 naming action otherwise).
 */
static IndexDef *
begin_index_srf(FunctionCallInfo fcinfo, const char *action, bits32 srf_flags)
{
	char	   *name = arg_text(fcinfo, 0, "the index name");

	flusso_require_current_sql();
	InitMaterializedSRF(fcinfo, srf_flags);
	SPI_connect();
	return flusso_definition_load_managed(name, action);
}

PG_FUNCTION_INFO_V1(flusso_document_ids);
Datum
flusso_document_ids(PG_FUNCTION_ARGS)
{
	IndexDef   *def = begin_index_srf(fcinfo, "list the documents of", MAT_SRF_USE_EXPECTED_DESC);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uint64		i;
	FlussoRights rights;
	int			rc;

	flusso_rights_as_owner(def->owner, &rights);
	rc = SPI_execute(flusso_sql_document_ids(def), true, 0);
	flusso_rights_restore(&rights);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not list the documents of index \"%s\"", def->name);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		Datum		v = PointerGetDatum(DatumGetTextPCopy(d));
		bool		n = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &v, &n);
	}
	SPI_finish();
	return (Datum) 0;
}

/* The text of column col in a jsonb row image, or NULL. */
static char *
image_value(Jsonb *row, const char *col)
{
	JsonbValue	k;
	JsonbValue *v;

	if (row == NULL)
		return NULL;
	k.type = jbvString;
	k.val.string.val = (char *) col;
	k.val.string.len = strlen(col);
	v = findJsonbValueFromContainer(&row->root, JB_FOBJECT, &k);
	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	if (v->type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	if (v->type == jbvBool)
		return pstrdup(v->val.boolean ? "true" : "false");
	return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
}

static List *
watch_images(FlussoWatch *w, Jsonb *old_row, Jsonb *new_row)
{
	List	   *images = NIL;
	Jsonb	   *rows[2] = {old_row, new_row};
	int			r;

	for (r = 0; r < 2; r++)
	{
		char	  **values = palloc0(sizeof(char *) * w->ncols);
		int			i;

		if (rows[r] == NULL)
			continue;
		for (i = 0; i < w->ncols; i++)
			values[i] = image_value(rows[r], w->columns[i]);
		images = lappend(images, values);
	}
	return images;
}

/*
 * flusso.affected_documents(name, table, old_row, new_row): the _id of
 * every document of the index that a change to a row of table affects,
 * given the row's old and new image as jsonb (either may be NULL).  It runs
 * the same resolve step as the sync worker.
 */
PG_FUNCTION_INFO_V1(flusso_affected_documents);
Datum
flusso_affected_documents(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_ARGISNULL(1) ? InvalidOid : PG_GETARG_OID(1);
	Jsonb	   *old_row = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	Jsonb	   *new_row = PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext caller = CurrentMemoryContext;
	IndexDef   *def = begin_index_srf(fcinfo, "resolve changes for", MAT_SRF_USE_EXPECTED_DESC);
	FlussoKeySet *keys = flusso_keyset_create(CurrentMemoryContext);
	ListCell   *lc;
	FlussoRights rights;

	flusso_rights_as_owner(def->owner, &rights);
	foreach(lc, flusso_sql_watches(def))
	{
		FlussoWatch *w = lfirst(lc);

		if (w->relid == relid)
			flusso_resolve(w, NULL, watch_images(w, old_row, new_row), keys,
						   list_length(def->key));
	}
	flusso_rights_restore(&rights);
	MemoryContextSwitchTo(caller);
	foreach(lc, flusso_keyset_ids(keys))
	{
		Datum		v = CStringGetTextDatum(lfirst(lc));
		bool		n = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &v, &n);
	}
	SPI_finish();
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(flusso_no_such_index);
Datum
flusso_no_such_index(PG_FUNCTION_ARGS)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("index \"%s\" does not exist", text_to_cstring(PG_GETARG_TEXT_PP(0))),
			 errhint("flusso.indexes lists the indexes.")));
	PG_RETURN_VOID();
}

/*
 * flusso.documents(name): every document of the index, built exactly as the
 * backfill builds them, in key order.  The consistency checker compares
 * them with OpenSearch; they can also be exported as they are.
 */
/* The rows of a backfill page (id, document, key...) into the result, as they are. */
static void
put_documents(ReturnSetInfo *rsinfo, MemoryContext caller, SPITupleTable *tab, uint64 n)
{
	uint64		r;

	for (r = 0; r < n; r++)
	{
		Datum		values[2];
		bool		nulls[2];
		MemoryContext spi;

		/* text datums as they are (json is text inside): nothing copied twice, nothing kept */
		values[0] = SPI_getbinval(tab->vals[r], tab->tupdesc, 1, &nulls[0]);
		values[1] = SPI_getbinval(tab->vals[r], tab->tupdesc, 2, &nulls[1]);
		spi = MemoryContextSwitchTo(caller);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(spi);
	}
}

/* A backfill statement of def, prepared: the first page's, or the next ones'. */
static SPIPlanPtr
prepare_backfill(IndexDef *def, bool first)
{
	int			nargs;
	Oid		   *types = flusso_sql_backfill_types(def, first, &nargs);
	SPIPlanPtr	plan = SPI_prepare(flusso_sql_backfill(def, first), nargs, types);

	if (plan == NULL)
		elog(ERROR, "could not prepare the backfill statements of index \"%s\"", def->name);
	return plan;
}

PG_FUNCTION_INFO_V1(flusso_documents);
Datum
flusso_documents(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext caller = CurrentMemoryContext;
	IndexDef   *def = begin_index_srf(fcinfo, "build the documents of", 0);
	int			nkeys = list_length(def->key);
	Datum	   *params = palloc(sizeof(Datum) * (nkeys + 1));
	SPIPlanPtr	first_plan;
	SPIPlanPtr	next_plan;
	int			i;
	uint64		n;
	FlussoRights rights;

	flusso_rights_as_owner(def->owner, &rights);
	first_plan = prepare_backfill(def, true);
	next_plan = prepare_backfill(def, false);
	params[0] = Int32GetDatum(1000);
	if (SPI_execute_plan(first_plan, params, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not build the documents of index \"%s\"", def->name);
	while ((n = SPI_processed) > 0)
	{
		SPITupleTable *tab = SPI_tuptable;

		put_documents(rsinfo, caller, tab, n);
		if (n < 1000)
			break;
		for (i = 0; i < nkeys; i++)
			params[i] = CStringGetTextDatum(SPI_getvalue(tab->vals[n - 1], tab->tupdesc, 3 + i));
		params[nkeys] = Int32GetDatum(1000);
		SPI_freetuptable(tab);
		if (SPI_execute_plan(next_plan, params, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not build the documents of index \"%s\"", def->name);
	}
	flusso_rights_restore(&rights);
	SPI_finish();
	return (Datum) 0;
}

typedef struct ResolveStored
{
	const char *name;
	const char *json;
	Oid			owner;
	char	   *resolved;
} ResolveStored;

static void
resolve_stored(void *arg)
{
	ResolveStored *a = arg;
	FlussoRights rights;
	IndexDef   *def;

	flusso_rights_as_owner_resolving(a->owner, &rights);
	def = flusso_definition_compile(a->name, a->json, false);
	flusso_rights_restore(&rights);
	a->resolved = flusso_def_resolved_json(def, a->json);
}

/* Store one definition resolved; index_state keeps matching it, so nothing is rebuilt. */
static void
store_resolved(const char *name, const char *old, const char *resolved)
{
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3] = {CStringGetTextDatum(name), CStringGetTextDatum(resolved),
	CStringGetTextDatum(old)};

	if (SPI_execute_with_args("UPDATE flusso.definitions SET definition = $2::pg_catalog.jsonb "
							  "WHERE name OPERATOR(pg_catalog.=) $1",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE ||
		SPI_execute_with_args("UPDATE flusso.index_state SET live_definition = $2::pg_catalog.jsonb "
							  "WHERE name OPERATOR(pg_catalog.=) $1 "
							  "AND live_definition OPERATOR(pg_catalog.=) $3::pg_catalog.jsonb",
							  3, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE ||
		SPI_execute_with_args("UPDATE flusso.index_state SET build_definition = $2::pg_catalog.jsonb "
							  "WHERE name OPERATOR(pg_catalog.=) $1 "
							  "AND build_definition OPERATOR(pg_catalog.=) $3::pg_catalog.jsonb",
							  3, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not store the resolved definition of index \"%s\"", name);
}

/*
 * flusso._resolve_stored_definitions(), run by the 0.4.0 upgrade script:
 * definitions stored by earlier versions named tables and functions as the
 * sync worker's search_path found them, the server's default one.  They are
 * resolved under that path now and stored resolved.  A definition that no
 * longer compiles is left as it is, with a WARNING.
 */
PG_FUNCTION_INFO_V1(flusso_resolve_stored_definitions);
Datum
flusso_resolve_stored_definitions(PG_FUNCTION_ARGS)
{
	SPITupleTable *tab;
	uint64		i;
	uint64		n;
	int			level;

	SPI_connect();
	if (SPI_execute("SELECT d.name, d.definition::pg_catalog.text, d.owner::pg_catalog.oid "
					"FROM flusso.definitions d ORDER BY d.name", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read flusso.definitions");
	tab = SPI_tuptable;
	n = SPI_processed;
	level = NewGUCNestLevel();
	(void) set_config_option("search_path", GetConfigOptionResetString("search_path"),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		ResolveStored a = {SPI_getvalue(tab->vals[i], tab->tupdesc, 1),
			SPI_getvalue(tab->vals[i], tab->tupdesc, 2),
			DatumGetObjectId(SPI_getbinval(tab->vals[i], tab->tupdesc, 3, &isnull)), NULL};
		FlussoError error;

		if (flusso_guard(resolve_stored, &a, &error))
			store_resolved(a.name, a.json, a.resolved);
		else
			ereport(WARNING,
					(errmsg("the definition of flusso index \"%s\" is stored as it was: %s", a.name,
							error.message),
					 errhint("Fix it with flusso.alter_index; the index reports the error until then.")));
	}
	AtEOXact_GUC(true, level);
	SPI_finish();
	PG_RETURN_VOID();
}
