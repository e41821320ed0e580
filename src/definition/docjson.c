/*-------------------------------------------------------------------------
 *
 * docjson.c
 *	  flusso._object(): the JSON objects of the generated documents.
 *
 * The generated statements build every object of a document with
 * flusso._object(key, value, key, value, ...).  It takes what
 * json_build_object() takes and returns the same text, byte for byte, but
 * it works out how to write each argument once per call site instead of
 * once per row: the argument types are categorized, output functions
 * looked up and constant keys escaped on the first call and kept in
 * fn_extra; integers, text and nested json are then written without a
 * function call.  json_build_object() repeats its catalog lookups for
 * every value of every row, which made it the largest single cost of
 * building a document.
 *
 * The categories and their JSON are json_build_object()'s (PostgreSQL's
 * json.c: json_categorize_type and datum_to_json); arrays and composites
 * go through array_to_json() and row_to_json(), which json_build_object()
 * uses for them too.
 *
 * It must not write anything json_build_object() would not write: the
 * documents' bytes are compared with PostgreSQL's own
 * (test/pgtap/05_objects.sql).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "fmgr.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "base/compat.h"

typedef enum ArgKind
{
	ARG_BOOL,
	ARG_INTEGER,				/* int2, int4, int8: written directly */
	ARG_NUMBER,					/* float4, float8, numeric: output, unquoted if valid */
	ARG_DATETIME,				/* date, timestamp, timestamptz */
	ARG_TEXT,					/* text, varchar: escaped */
	ARG_JSON,					/* json: as it is */
	ARG_JSONB,					/* jsonb: its output */
	ARG_ARRAY,
	ARG_COMPOSITE,
	ARG_CAST,					/* a user type with a cast to json */
	ARG_OTHER					/* anything else: its output, escaped */
} ArgKind;

typedef struct ArgInfo
{
	ArgKind		kind;
	Oid			base;			/* the type, domains looked through */
	FmgrInfo	func;			/* output or cast function, where used */
	char	   *key;			/* a constant key, escaped and quoted */
} ArgInfo;

typedef struct CallSite
{
	int			nargs;
	ArgInfo		args[FLEXIBLE_ARRAY_MEMBER];
} CallSite;

PG_FUNCTION_INFO_V1(flusso_object);

static ArgKind
categorize(Oid base, Oid *func)
{
	Oid			castfunc;
	bool		varlena;

	*func = InvalidOid;
	switch (base)
	{
		case BOOLOID:
			return ARG_BOOL;
		case INT2OID:
		case INT4OID:
		case INT8OID:
			return ARG_INTEGER;
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			getTypeOutputInfo(base, func, &varlena);
			return ARG_NUMBER;
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			return ARG_DATETIME;
		case TEXTOID:
		case VARCHAROID:
			return ARG_TEXT;
		case JSONOID:
			return ARG_JSON;
		case JSONBOID:
			getTypeOutputInfo(base, func, &varlena);
			return ARG_JSONB;
	}
	if (OidIsValid(get_element_type(base)) || base == ANYARRAYOID ||
		base == ANYCOMPATIBLEARRAYOID || base == RECORDARRAYOID)
		return ARG_ARRAY;
	if (type_is_rowtype(base))
		return ARG_COMPOSITE;
	if (base >= FirstNormalObjectId &&
		find_coercion_pathway(JSONOID, base, COERCION_EXPLICIT, &castfunc) == COERCION_PATH_FUNC &&
		OidIsValid(castfunc))
	{
		*func = castfunc;
		return ARG_CAST;
	}
	getTypeOutputInfo(base, func, &varlena);
	return ARG_OTHER;
}

static void
append_datetime(StringInfo out, Datum value, Oid type)
{
	char		buf[MAXDATELEN + 1];

	JsonEncodeDateTime(buf, value, type, NULL);
	appendStringInfoChar(out, '"');
	appendStringInfoString(out, buf);
	appendStringInfoChar(out, '"');
}

static void
append_text(StringInfo out, text *t)
{
	appendBinaryStringInfo(out, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/* A value as json_build_object() writes it (key: as an object key, quoted). */
static void
append_value(StringInfo out, ArgInfo *a, Datum value, bool key)
{
	bool		quote = key;
	char	   *s = NULL;
	char		num[MAXINT8LEN + 1];

	switch (a->kind)
	{
		case ARG_BOOL:
			s = DatumGetBool(value) ? "true" : "false";
			break;
		case ARG_INTEGER:
			pg_lltoa(a->base == INT2OID ? DatumGetInt16(value) :
					 a->base == INT4OID ? DatumGetInt32(value) : DatumGetInt64(value), num);
			s = num;
			break;
		case ARG_NUMBER:
			s = OutputFunctionCall(&a->func, value);
			quote |= !IsValidJsonNumber(s, strlen(s));	/* NaN, Infinity: a string */
			break;
		case ARG_DATETIME:
			append_datetime(out, value, a->base);
			return;
		case ARG_TEXT:
			escape_json(out, TextDatumGetCString(value));
			return;
		case ARG_JSON:
			append_text(out, DatumGetTextPP(value));
			return;
		case ARG_JSONB:
			appendStringInfoString(out, OutputFunctionCall(&a->func, value));
			return;
		case ARG_ARRAY:
			append_text(out, DatumGetTextPP(DirectFunctionCall1(array_to_json, value)));
			return;
		case ARG_COMPOSITE:
			append_text(out, DatumGetTextPP(DirectFunctionCall1(row_to_json, value)));
			return;
		case ARG_CAST:
			append_text(out, DatumGetTextPP(FunctionCall1(&a->func, value)));
			return;
		case ARG_OTHER:
			escape_json(out, OutputFunctionCall(&a->func, value));
			return;
	}
	if (quote)
		escape_json(out, s);
	else
		appendStringInfoString(out, s);
}

static CallSite *
call_site(FunctionCallInfo fcinfo)
{
	FmgrInfo   *flinfo = fcinfo->flinfo;
	CallSite   *site = flinfo->fn_extra;
	MemoryContext old;
	int			i;

	if (site != NULL && site->nargs == PG_NARGS())
		return site;
	if (get_fn_expr_variadic(flinfo))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("flusso._object() does not take a VARIADIC array"),
				 errhint("Pass the keys and values as separate arguments.")));
	if (PG_NARGS() % 2 != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument list must have even number of elements"),
				 errhint("The arguments of flusso._object() must consist of alternating keys and values.")));
	old = MemoryContextSwitchTo(flinfo->fn_mcxt);
	site = palloc0(offsetof(CallSite, args) + sizeof(ArgInfo) * Max(PG_NARGS(), 1));
	site->nargs = PG_NARGS();
	for (i = 0; i < PG_NARGS(); i++)
	{
		ArgInfo    *a = &site->args[i];
		Oid			type = get_fn_expr_argtype(flinfo, i);
		Oid			func;

		if (!OidIsValid(type))
			elog(ERROR, "could not determine the type of argument %d of flusso._object()", i + 1);
		a->base = getBaseType(type);
		a->kind = categorize(a->base, &func);
		if (OidIsValid(func))
			fmgr_info_cxt(func, &a->func, flinfo->fn_mcxt);
		if (i % 2 == 0 && (a->kind == ARG_ARRAY || a->kind == ARG_COMPOSITE ||
						   a->kind == ARG_JSON || a->kind == ARG_JSONB || a->kind == ARG_CAST))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key value must be scalar, not array, composite, or json")));
	}
	flinfo->fn_extra = site;
	MemoryContextSwitchTo(old);
	return site;
}

/* The escaped, quoted key of argument i, kept when the argument is constant. */
static void
append_key(StringInfo out, FunctionCallInfo fcinfo, CallSite *site, int i)
{
	ArgInfo    *a = &site->args[i];
	StringInfoData key;

	if (a->key)
	{
		appendStringInfoString(out, a->key);
		return;
	}
	if (PG_ARGISNULL(i))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument %d cannot be null", i + 1),
				 errhint("Object keys should be text.")));
	initStringInfo(&key);
	append_value(&key, a, PG_GETARG_DATUM(i), true);
	appendStringInfoString(out, key.data);
	if (get_fn_expr_arg_stable(fcinfo->flinfo, i))
		a->key = MemoryContextStrdup(fcinfo->flinfo->fn_mcxt, key.data);
	pfree(key.data);
}

Datum
flusso_object(PG_FUNCTION_ARGS)
{
	CallSite   *site = call_site(fcinfo);
	StringInfoData out;
	text	   *result;
	int			i;

	/* written straight into the result: room for the varlena header first */
	initStringInfo(&out);
	appendStringInfoSpaces(&out, VARHDRSZ);
	appendStringInfoChar(&out, '{');
	for (i = 0; i < site->nargs; i += 2)
	{
		if (i > 0)
			appendStringInfoString(&out, ", ");
		append_key(&out, fcinfo, site, i);
		appendStringInfoString(&out, " : ");
		if (PG_ARGISNULL(i + 1))
			appendStringInfoString(&out, "null");
		else
			append_value(&out, &site->args[i + 1], PG_GETARG_DATUM(i + 1), false);
	}
	appendStringInfoChar(&out, '}');
	result = (text *) out.data;
	SET_VARSIZE(result, out.len);
	PG_RETURN_TEXT_P(result);
}
