/*-------------------------------------------------------------------------
 *
 * check.c
 *	  Checks a parsed index definition against the catalogs.
 *
 * This file owns everything the definition says about the database: that
 * the tables and columns exist, which key identifies a root row, how each
 * child joins its parent (given, or derived from the one foreign key between
 * the two tables), that joined columns have an equality operator, that
 * filters, expressions and orderings are single, side-effect-free SQL
 * expressions over their own table, and whether the replica identity of
 * each table lets deletes and re-parenting be mapped to their documents.
 * It fills the catalog fields of the model (OIDs, types, the columns that
 * break ties in a child's ordering) and raises a clear error, naming the
 * path in the definition, for anything wrong; what is allowed but will not
 * do what its author likely means (an old key missing from the WAL, an
 * expression that reads the current time) is a warning.  It reads
 * catalogs only and writes nothing, except REPLICA IDENTITY when
 * flusso.manage_replica_identity asks for it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parse_oper.h"
#include "parser/parser.h"
#include "parser/scanner.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
#include "utils/guc.h"
#include "utils/ruleutils.h"
#include "utils/typcache.h"
#include "parser/parse_clause.h"

#include "base/compat.h"
#include "base/rights.h"
#include "base/settings.h"
#include "definition/check.h"
#include "definition/definition.h"
#include "definition/parse.h"
#include "definition/sqlgen.h"

void
flusso_def_raise(const DefError *err)
{
	ereport(ERROR,
			(errcode(err->sqlstate),
			 errmsg("%s", err->message),
			 err->detail ? errdetail("%s", err->detail) : 0,
			 err->hint ? errhint("%s", err->hint) : 0));
}

static char *
path_of(const char *base, const char *key)
{
	if (base == NULL || base[0] == '\0')
		return pstrdup(key);
	return psprintf("%s.%s", base, key);
}

static const char *
qualified(const DefTable *t)
{
	return quote_qualified_identifier(t->schema, t->relname);
}

/* ---- tables and columns ---- */

static void
resolve_table(DefTable *t, const char *path)
{
	List	   *volatile names = NIL;
	Oid			relid;
	char		relkind;
	MemoryContext ctx = CurrentMemoryContext;

	PG_TRY();
	{
		names = compat_stringToQualifiedNameList(t->text);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(ctx);
		FlushErrorState();
		names = NIL;
	}
	PG_END_TRY();
	if (names == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("\"%s\" at %s is not a table name", t->text, path),
				 errdetail("Table names are read as in SQL: schema.table, with double quotes around names that need them."),
				 errhint("Correct the name at %s.", path)));
	relid = RangeVarGetRelid(makeRangeVarFromNameList(names), AccessShareLock, true);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table \"%s\" at %s does not exist", t->text, path),
				 errdetail("Unquoted names are folded to lower case; without a schema the search_path is used."),
				 errhint("Correct the table name at %s, or create the table first.", path)));
	relkind = get_rel_relkind(relid);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" at %s is not a table", t->text, path),
				 errdetail("flusso follows changes through logical decoding, which only sees tables."),
				 errhint("Name the underlying table at %s.", path)));
	t->relid = relid;
	t->schema = get_namespace_name(get_rel_namespace(relid));
	t->relname = get_rel_name(relid);
	t->text = pstrdup(qualified(t));	/* resolved once: stored like this */
}

static AttrNumber
column_attnum(const DefTable *t, const char *column, const char *path)
{
	AttrNumber	attnum = get_attnum(t->relid, column);

	if (attnum == InvalidAttrNumber || attnum < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" at %s does not exist in table %s", column, path,
						qualified(t)),
				 errdetail("Column names in a definition are exact: they are not folded to lower case."),
				 errhint("Correct the column name at %s.", path)));
	return attnum;
}

static Oid
column_type(const DefTable *t, const char *column, const char *path)
{
	return get_atttype(t->relid, column_attnum(t, column, path));
}

/* ---- expressions ---- */

static void
expression_error(const char *what, const char *path, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_SYNTAX_ERROR),
			 errmsg("%s at %s is not a single SQL expression", what, path),
			 errdetail("%s", detail),
			 errhint("Write one expression over the columns of the table at %s, without a semicolon, FROM or subquery.", path)));
}

/*
 * The text's own brackets must balance, and it must hold no semicolon, so
 * that whatever it is embedded in, it stays one operand: "true) OR (true"
 * parses inside parentheses but would change the meaning of ours.  Tokens
 * come from PostgreSQL's own scanner, so quotes and comments are skipped
 * exactly as the parser skips them.
 */
static void
check_balanced(const char *text, const char *what, const char *path)
{
	core_yy_extra_type extra;
	core_yyscan_t scanner = scanner_init(text, &extra, &ScanKeywords, ScanKeywordTokens);
	core_YYSTYPE lval;
	YYLTYPE		loc;
	int			depth = 0;
	int			token;
	const char *problem = NULL;

	while (problem == NULL && (token = core_yylex(&lval, &loc, scanner)) != 0)
	{
		if (token == '(' || token == '[')
			depth++;
		else if ((token == ')' || token == ']') && --depth < 0)
			problem = "It closes a parenthesis it did not open.";
		else if (token == ';')
			problem = "It contains a semicolon.";
	}
	scanner_finish(scanner);
	if (problem == NULL && depth != 0)
		problem = "It opens a parenthesis it does not close.";
	if (problem)
		expression_error(what, path, problem);
}

/*
 * Run parse(sql), catching its error: the result, or NULL with *error set.
 * Only for raising a clearer error at once (no subtransaction is rolled
 * back, so nothing may go on after a failure but that error).
 */
static void *
catch_parse_error(void *(*parse) (const char *sql), const char *sql, ErrorData **error)
{
	MemoryContext ctx = CurrentMemoryContext;
	void	   *volatile result = NULL;

	*error = NULL;
	PG_TRY();
	{
		result = parse(sql);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(ctx);
		*error = CopyErrorData();
		FlushErrorState();
	}
	PG_END_TRY();
	return result;
}

static void *
parse_raw(const char *sql)
{
	return raw_parser(sql, RAW_PARSE_DEFAULT);
}

static void *
parse_and_analyze(const char *sql)
{
	RawStmt    *raw = linitial(raw_parser(sql, RAW_PARSE_DEFAULT));

	return parse_analyze_fixedparams(raw, sql, NULL, 0, NULL);
}

/*
 * The text must parse as exactly "SELECT (text)" with one target and no
 * other clause (or, for orderings, "SELECT 1 ORDER BY text" with nothing
 * else): no second statement, no FROM, no comment or parenthesis that
 * escapes our wrapping.
 */
static void
check_shape(const char *text, const char *what, const char *path, bool ordering)
{
	char	   *sql = ordering ?
		psprintf("SELECT 1 ORDER BY %s", flusso_sql_fragment(text)) :
		psprintf("SELECT (%s)", flusso_sql_fragment(text));
	List	   *stmts;
	SelectStmt *s;
	ErrorData  *edata;

	check_balanced(text, what, path);
	stmts = catch_parse_error(parse_raw, sql, &edata);
	if (edata)
		expression_error(what, path, psprintf("It does not parse: %s.", edata->message));
	if (list_length(stmts) != 1 ||
		!IsA(((RawStmt *) linitial(stmts))->stmt, SelectStmt))
		expression_error(what, path, "It contains more than one statement.");
	s = (SelectStmt *) ((RawStmt *) linitial(stmts))->stmt;
	if (list_length(s->targetList) != 1 || s->fromClause || s->whereClause ||
		s->groupClause || s->havingClause || s->windowClause || s->distinctClause ||
		s->intoClause || s->withClause || s->limitCount || s->limitOffset ||
		s->lockingClause || s->valuesLists || s->op != SETOP_NONE ||
		(!ordering && s->sortClause) || (ordering && !s->sortClause))
		expression_error(what, path, "It continues past one expression.");
}

/* The direction of one ORDER BY item, as ruleutils writes it. */
static void
append_direction(StringInfo out, SortGroupClause *sc, Oid type)
{
	TypeCacheEntry *tc = lookup_type_cache(type, TYPECACHE_LT_OPR | TYPECACHE_GT_OPR);

	if (sc->sortop == tc->lt_opr)
	{
		if (sc->nulls_first)
			appendStringInfoString(out, " NULLS FIRST");
	}
	else if (sc->sortop == tc->gt_opr)
	{
		appendStringInfoString(out, " DESC");
		if (!sc->nulls_first)
			appendStringInfoString(out, " NULLS LAST");
	}
	else
		appendStringInfo(out, " USING %s%s", flusso_sql_operator_name(sc->sortop),
						 sc->nulls_first ? " NULLS FIRST" : " NULLS LAST");
}

/*
 * The analyzed expression (or ORDER BY list) written back as text by
 * PostgreSQL's deparser under the fixed search_path: every function,
 * operator, type and collation that is not in pg_catalog comes out
 * schema-qualified, so the text means the same thing to whoever runs it.
 */
static char *
deparse(Query *q, const DefTable *t, bool ordering)
{
	List	   *context = deparse_context_for(t->relname, t->relid);
	int			level = NewGUCNestLevel();
	StringInfoData out;
	ListCell   *lc;

	(void) set_config_option("search_path", FLUSSO_SAFE_SEARCH_PATH, PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	initStringInfo(&out);
	if (!ordering)
		appendStringInfoString(&out, deparse_expression((Node *) ((TargetEntry *) linitial(q->targetList))->expr,
														context, true, false));
	foreach(lc, ordering ? q->sortClause : NIL)
	{
		SortGroupClause *sc = lfirst(lc);
		Node	   *expr = (Node *) get_sortgroupclause_tle(sc, q->targetList)->expr;

		appendStringInfo(&out, "%s%s", out.len ? ", " : "",
						 deparse_expression(expr, context, true, false));
		append_direction(&out, sc, exprType(expr));
	}
	AtEOXact_GUC(true, level);
	return out.data;
}

/*
 * Does the analyzed expression read the current time?  Then what it
 * computes is as of the build, and flusso builds a document only when one
 * of its rows changes: time passing rebuilds nothing.  The name of the
 * first such call (CURRENT_DATE, now(), ...), or NULL.  A function of the
 * user's that reads the time inside is out of reach: only its own
 * volatility is known.
 */
static bool
is_time_function(Oid funcid, void *context)
{
	switch (funcid)
	{
		case F_NOW:
		case F_STATEMENT_TIMESTAMP:
		case F_TRANSACTION_TIMESTAMP:
		case F_CLOCK_TIMESTAMP:
		case F_TIMEOFDAY:
		case F_AGE_TIMESTAMP:	/* age(x): from midnight today */
		case F_AGE_TIMESTAMPTZ:
			*(Oid *) context = funcid;
			return true;
		default:
			return false;
	}
}

static bool
find_time_call(Node *node, const char **call)
{
	Oid			funcid = InvalidOid;

	if (node == NULL)
		return false;
	if (IsA(node, SQLValueFunction))
	{
		switch (((SQLValueFunction *) node)->op)
		{
			case SVFOP_CURRENT_DATE:
				*call = "CURRENT_DATE";
				return true;
			case SVFOP_CURRENT_TIME:
			case SVFOP_CURRENT_TIME_N:
				*call = "CURRENT_TIME";
				return true;
			case SVFOP_CURRENT_TIMESTAMP:
			case SVFOP_CURRENT_TIMESTAMP_N:
				*call = "CURRENT_TIMESTAMP";
				return true;
			case SVFOP_LOCALTIME:
			case SVFOP_LOCALTIME_N:
				*call = "LOCALTIME";
				return true;
			case SVFOP_LOCALTIMESTAMP:
			case SVFOP_LOCALTIMESTAMP_N:
				*call = "LOCALTIMESTAMP";
				return true;
			default:
				break;
		}
	}
	if (check_functions_in_node(node, is_time_function, &funcid))
	{
		*call = psprintf("%s()", get_func_name(funcid));
		return true;
	}
	return expression_tree_walker(node, find_time_call, call);
}

/* Warn (at create_index and alter_index) of an expression that reads the time. */
static void
check_time_dependence(IndexDef *def, bool report, Node *expr, const char *what,
					  const char *path)
{
	const char *call = NULL;

	if (!find_time_call(expr, &call))
		return;
	def->warnings = lappend(def->warnings,
							psprintf("%s at %s depends on the current time (%s)", what, path, call));
	if (report)
		ereport(WARNING,
				(errmsg("%s at %s depends on the current time: it calls %s", what, path, call),
				 errdetail("Index \"%s\" builds a document only when one of its rows changes, and time passing changes no row: what the %s computes is as of the last change, and a row that comes to match (or stops matching) as time goes by reaches the index only at its next change.",
						   def->name, what),
				 errhint("Rebuild the index on a schedule with flusso.reindex('%s') (from pg_cron, for instance), or keep the current time out of filters, expressions, values and orderings (a column that a scheduled job updates can stand in for it).",
						 def->name)));
}

/*
 * Analyze "SELECT expr FROM schema.table AS relname" (or an ORDER BY) and
 * return the expression's type; *text becomes its deparsed form.  Unknown
 * columns, type errors, subqueries, aggregates, set-returning and volatile
 * functions are refused.
 */
static Oid
analyze_expression(IndexDef *def, bool report, const DefTable *t, char **text,
				   const char *what, const char *path, bool ordering)
{
	char	   *sql;
	Query	   *q;
	ErrorData  *edata;
	Node	   *expr;

	check_shape(*text, what, path, ordering);
	sql = ordering ?
		psprintf("SELECT 1 FROM %s AS %s ORDER BY %s", qualified(t),
				 quote_identifier(t->relname), flusso_sql_fragment(*text)) :
		psprintf("SELECT (%s) FROM %s AS %s", flusso_sql_fragment(*text), qualified(t),
				 quote_identifier(t->relname));
	q = catch_parse_error(parse_and_analyze, sql, &edata);
	if (edata)
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("%s at %s is invalid: %s", what, path, edata->message),
				 edata->detail ? errdetail("%s", edata->detail) :
				 errdetail("It is read as an SQL expression over the columns of %s.", qualified(t)),
				 errhint("Correct the %s at %s.", what, path)));
	if (q->hasSubLinks || q->hasAggs || q->hasWindowFuncs || q->hasTargetSRFs)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s at %s uses a subquery, an aggregate, a window or a set-returning function", what, path),
				 errdetail("flusso rebuilds documents when the rows they are made of change; a subquery reads rows it cannot follow."),
				 errhint("Read other tables through \"children\" instead (see %s).", path)));
	/* an ORDER BY's expressions are resjunk entries of the target list */
	expr = (Node *) q->targetList;
	if (contain_volatile_functions(expr))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s at %s calls a volatile function", what, path),
				 errdetail("A document must be the same each time it is built from the same rows; volatile functions (random(), nextval(), functions with side effects) are not allowed."),
				 errhint("Remove the volatile call at %s, or mark the function STABLE or IMMUTABLE if it truly is.", path)));
	check_time_dependence(def, report, expr, what, path);
	*text = deparse(q, t, ordering);
	return ordering ? InvalidOid :
		exprType((Node *) ((TargetEntry *) linitial(q->targetList))->expr);
}

static void
check_filter(IndexDef *def, DefNode *node, bool report)
{
	Oid			type;
	char	   *path = path_of(node->path, "filter");

	if (node->filter == NULL)
		return;
	type = analyze_expression(def, report, &node->table, &node->filter, "filter", path, false);
	if (type != BOOLOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("filter at %s is of type %s, not boolean", path, format_type_be(type)),
				 errdetail("A filter keeps the rows for which it is true."),
				 errhint("Write a condition at %s, such as \"deleted_at IS NULL\".", path)));
}

/* ---- fields ---- */

static void
expand_all_columns(DefNode *node)
{
	Relation	rel = table_open(node->table.relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		DefField   *f;

		if (att->attisdropped)
			continue;
		f = palloc0(sizeof(DefField));
		f->name = pstrdup(NameStr(att->attname));
		f->column = f->name;
		f->path = path_of(node->path, "table");
		node->fields = lappend(node->fields, f);
	}
	table_close(rel, AccessShareLock);
}

static void
check_fields(IndexDef *def, DefNode *node, bool report)
{
	ListCell   *lc;

	if (node->all_columns)
		expand_all_columns(node);
	foreach(lc, node->fields)
	{
		DefField   *f = lfirst(lc);

		if (f->column)
		{
			AttrNumber	attnum = column_attnum(&node->table,
											   f->column, f->path);

			get_atttypetypmodcoll(node->table.relid, attnum, &f->type, &f->typmod,
								  &(Oid){0});
		}
		else
			f->type = analyze_expression(def, report, &node->table, &f->expr, "expression",
										 path_of(f->path, "expr"), false);
	}
	/* a column expanded from the table may clash with a child's name */
	foreach(lc, node->children)
	{
		DefNode    *child = lfirst(lc);
		ListCell   *fc;

		foreach(fc, node->fields)
			if (strcmp(((DefField *) lfirst(fc))->name, child->name) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("field \"%s\" appears twice in one object", child->name),
						 errdetail("%s is both a column of %s and the name of a child.",
								   child->name, qualified(&node->table)),
						 errhint("Rename the child at %s, or list \"columns\" explicitly.",
								 path_of(child->path, "name"))));
	}
}

/* ---- keys ---- */

/* The columns of a unique, non-partial, plain index whose columns are NOT NULL. */
static List *
usable_unique_keys(Relation rel)
{
	List	   *result = NIL;
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;

	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index idx;
		List	   *cols = NIL;
		bool		ok;
		int			i;

		if (!HeapTupleIsValid(tup))
			continue;
		idx = (Form_pg_index) GETSTRUCT(tup);
		ok = idx->indisunique && idx->indisvalid && idx->indimmediate &&
			heap_attisnull(tup, Anum_pg_index_indpred, NULL) &&
			heap_attisnull(tup, Anum_pg_index_indexprs, NULL);
		for (i = 0; ok && i < idx->indnkeyatts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel),
												  idx->indkey.values[i] - 1);

			ok = att->attnotnull;
			cols = lappend(cols, pstrdup(NameStr(att->attname)));
		}
		if (ok)
			result = idx->indisprimary ? lcons(cols, result) : lappend(result, cols);
		ReleaseSysCache(tup);
	}
	return result;
}

static bool
same_columns(List *a, List *b)
{
	ListCell   *lc;

	if (list_length(a) != list_length(b))
		return false;
	foreach(lc, a)
	{
		ListCell   *lb;
		bool		found = false;

		foreach(lb, b)
			found |= strcmp(lfirst(lc), lfirst(lb)) == 0;
		if (!found)
			return false;
	}
	return true;
}

static void
check_key(IndexDef *def)
{
	DefTable   *t = &def->root->table;
	Relation	rel = table_open(t->relid, AccessShareLock);
	List	   *keys = usable_unique_keys(rel);
	Oid			pk = compat_RelationGetPrimaryKeyIndex(rel);
	ListCell   *lc;
	bool		found = false;

	table_close(rel, AccessShareLock);
	if (def->key == NIL)
	{
		if (keys == NIL || (!OidIsValid(pk) && list_length(keys) > 1))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
					 errmsg("table %s has no primary key%s", qualified(t),
							keys == NIL ? " and no unique NOT NULL key" : ""),
					 errdetail(keys == NIL ?
							   "Each document needs a stable _id, taken from a key of the root table." :
							   "It has several unique NOT NULL keys, and flusso cannot tell which one identifies a document."),
					 errhint(keys == NIL ? "Add a primary key to %s." :
							 "Name the key columns at \"key\", or add a primary key to %s.",
							 qualified(t))));
		def->key = linitial(keys);
	}
	foreach(lc, def->key)
		(void) column_attnum(t, lfirst(lc), "key");
	foreach(lc, keys)
		found |= same_columns(def->key, lfirst(lc));
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				 errmsg("the columns at \"key\" are not a unique NOT NULL key of %s", qualified(t)),
				 errdetail("A document _id must identify exactly one row for ever."),
				 errhint("Name the columns of the primary key or of a unique index on NOT NULL columns at \"key\".")));
	def->key_types = NIL;
	foreach(lc, def->key)
		def->key_types = lappend_oid(def->key_types, column_type(t, lfirst(lc), "key"));
}

/*
 * The columns that break ties when a "many" or "one" child's rows are
 * ordered, so that an array (and the row a "one" child takes) is the same
 * at every build, whatever plan the rows come in by: the child table's
 * primary key, or its only unique NOT NULL key; without one, every column,
 * compared by its text.  The ordering the definition gives comes first, so
 * documents change only where it left rows tied.
 */
static void
set_tiebreak(DefNode *node)
{
	Relation	rel;
	List	   *keys;
	Oid			pk;
	TupleDesc	desc;
	int			i;

	if (node->kind != DEF_MANY && node->kind != DEF_ONE)
		return;
	rel = table_open(node->table.relid, AccessShareLock);
	keys = usable_unique_keys(rel);
	pk = compat_RelationGetPrimaryKeyIndex(rel);
	node->tiebreak = NIL;
	node->tiebreak_text = false;
	if (keys != NIL && (OidIsValid(pk) || list_length(keys) == 1))
		node->tiebreak = linitial(keys);
	else
	{
		desc = RelationGetDescr(rel);
		for (i = 0; i < desc->natts; i++)
			if (!TupleDescAttr(desc, i)->attisdropped)
				node->tiebreak = lappend(node->tiebreak,
										 pstrdup(NameStr(TupleDescAttr(desc, i)->attname)));
		node->tiebreak_text = true;
	}
	table_close(rel, AccessShareLock);
}

/* ---- joins ---- */

typedef struct ForeignKey
{
	int			ncols;
	AttrNumber	from_cols[INDEX_MAX_KEYS];	/* in conrelid */
	AttrNumber	to_cols[INDEX_MAX_KEYS];	/* in confrelid */
} ForeignKey;

/* Foreign keys of table from that reference table to. */
static List *
foreign_keys(Oid from, Oid to)
{
	List	   *result = NIL;
	Relation	rel = table_open(from, AccessShareLock);
	List	   *fks = RelationGetFKeyList(rel);
	ListCell   *lc;

	foreach(lc, fks)
	{
		ForeignKeyCacheInfo *info = lfirst(lc);
		ForeignKey *fk;

		if (info->confrelid != to)
			continue;
		fk = palloc0(sizeof(ForeignKey));
		fk->ncols = info->nkeys;
		memcpy(fk->from_cols, info->conkey, sizeof(AttrNumber) * info->nkeys);
		memcpy(fk->to_cols, info->confkey, sizeof(AttrNumber) * info->nkeys);
		result = lappend(result, fk);
	}
	table_close(rel, AccessShareLock);
	return result;
}

/* join->left are columns of left_rel, join->right of right_rel. */
static void
join_from_fk(DefJoin *join, const ForeignKey *fk, Oid left_rel, Oid right_rel,
			 bool left_is_from, const char *path)
{
	int			i;

	join->ncols = fk->ncols;
	join->left = palloc(sizeof(char *) * fk->ncols);
	join->right = palloc(sizeof(char *) * fk->ncols);
	join->path = pstrdup(path);
	for (i = 0; i < fk->ncols; i++)
	{
		join->left[i] = get_attname(left_rel, left_is_from ? fk->from_cols[i] : fk->to_cols[i], false);
		join->right[i] = get_attname(right_rel, left_is_from ? fk->to_cols[i] : fk->from_cols[i], false);
	}
}

/*
 * The tables with a foreign key to relid (their own, not a partition's
 * copy of their parent's), as a List of Oids.  pg_constraint has no index
 * on confrelid: this scans it, which is fine for an error message.
 */
static List *
referencing_tables(Oid relid)
{
	Relation	rel = table_open(ConstraintRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *result = NIL;

	ScanKeyInit(&key, Anum_pg_constraint_confrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);

		if (con->contype == CONSTRAINT_FOREIGN && !OidIsValid(con->conparentid))
			result = list_append_unique_oid(result, con->conrelid);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * No foreign key joins a child to its parent: is there a link table, one
 * with foreign keys to both?  Raise the error naming it, with the "through"
 * to write.
 */
static int
compare_names(const ListCell *a, const ListCell *b)
{
	return strcmp(lfirst(a), lfirst(b));
}

static void
suggest_link_table(const DefTable *child, const DefTable *parent, const char *path)
{
	List	   *to_parent = referencing_tables(parent->relid);
	List	   *links = NIL;
	StringInfoData names;
	StringInfoData through;
	ListCell   *lc;

	foreach(lc, referencing_tables(child->relid))
	{
		Oid			link = lfirst_oid(lc);

		if (link != child->relid && link != parent->relid && list_member_oid(to_parent, link))
			links = lappend(links, quote_qualified_identifier(get_namespace_name(get_rel_namespace(link)),
															  get_rel_name(link)));
	}
	if (links == NIL)
		return;
	list_sort(links, compare_names);
	initStringInfo(&names);
	foreach(lc, links)
		appendStringInfo(&names, "%s%s", foreach_current_index(lc) == 0 ? "" :
						 lnext(links, lc) ? ", " : " and ", (char *) lfirst(lc));
	initStringInfo(&through);
	appendStringInfoString(&through, "{\"table\": ");
	escape_json(&through, linitial(links));
	appendStringInfoString(&through, "}");
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_FOREIGN_KEY),
			 errmsg("cannot tell how %s joins %s at %s", qualified(child),
					qualified(parent), path),
			 list_length(links) == 1 ?
			 errdetail("There is no foreign key between the two tables, but %s has foreign keys to both: a link table.",
					   names.data) :
			 errdetail("There is no foreign key between the two tables, but %s have foreign keys to both: link tables.",
					   names.data),
			 list_length(links) == 1 ?
			 errhint("Join through it: add \"through\": %s at %s.", through.data, path) :
			 errhint("Join through one of them: add \"through\": %s at %s, or name another.",
					 through.data, path)));
}

/* Derive a join between two tables from the one foreign key between them. */
static void
derive_join(DefJoin *join, const DefTable *left, const DefTable *right,
			const char *path, const char *key)
{
	List	   *l2r = foreign_keys(left->relid, right->relid);
	List	   *r2l = left->relid == right->relid ? NIL :
		foreign_keys(right->relid, left->relid);
	int			n = list_length(l2r) + list_length(r2l);

	if (n == 0 && strcmp(key, "on") == 0)
		suggest_link_table(left, right, path);
	if (n != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FOREIGN_KEY),
				 errmsg("cannot tell how %s joins %s at %s", qualified(left),
						qualified(right), path),
				 errdetail(n == 0 ? "There is no foreign key between the two tables." :
						   "There are %d foreign keys between the two tables.", n),
				 errhint("Give the columns at %s, as {\"column of %s\": \"column of %s\"}.",
						 path_of(path, key), left->relname, right->relname)));
	if (l2r)
		join_from_fk(join, linitial(l2r), left->relid, right->relid, true, path_of(path, key));
	else
		join_from_fk(join, linitial(r2l), left->relid, right->relid, false, path_of(path, key));
}

static void
check_join(DefJoin *join, const DefTable *left, const DefTable *right)
{
	int			i;

	for (i = 0; i < join->ncols; i++)
	{
		Oid			lt = column_type(left, join->left[i], join->path);
		Oid			rt = column_type(right, join->right[i], path_of(join->path, join->left[i]));

		if (!OidIsValid(flusso_sql_equality(lt, rt, NULL)))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("cannot join %s.%s (%s) to %s.%s (%s) at %s",
							left->relname, join->left[i], format_type_be(lt),
							right->relname, join->right[i], format_type_be(rt), join->path),
					 errdetail("There is no equality operator between the two types in a default btree operator class, and neither converts to the other implicitly."),
					 errhint("Join columns of compatible types at %s.", join->path)));
	}
}

static void
check_node_join(DefNode *node)
{
	DefTable   *parent = &node->parent->table;

	if (node->has_through)
	{
		resolve_table(&node->through, path_of(node->path, "through.table"));
		if (node->through_parent.ncols == 0)
			derive_join(&node->through_parent, &node->through, parent,
						path_of(node->path, "through"), "parent");
		if (node->through_child.ncols == 0)
			derive_join(&node->through_child, &node->through, &node->table,
						path_of(node->path, "through"), "child");
		check_join(&node->through_parent, &node->through, parent);
		check_join(&node->through_child, &node->through, &node->table);
		return;
	}
	if (node->on.ncols == 0)
		derive_join(&node->on, &node->table, parent, node->path, "on");
	check_join(&node->on, &node->table, parent);
}

/*
 * A cycle: a child that joins back to its grandparent's table by the
 * very columns its parent joined in by, so the document would contain
 * itself (users -> orders -> the same user).
 */
static void
check_cycle(DefNode *node)
{
	DefNode    *p = node->parent;
	int			i;
	bool		reverse = true;

	if (p == NULL || p->parent == NULL || node->has_through || p->has_through ||
		node->table.relid != p->parent->table.relid || node->on.ncols != p->on.ncols)
		return;
	for (i = 0; i < node->on.ncols && reverse; i++)
	{
		int			j;
		bool		found = false;

		for (j = 0; j < p->on.ncols; j++)
			found |= strcmp(node->on.left[i], p->on.right[j]) == 0 &&
				strcmp(node->on.right[i], p->on.left[j]) == 0;
		reverse = found;
	}
	if (reverse)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_RECURSION),
				 errmsg("%s joins back to %s by the same columns %s came in by",
						node->path, qualified(&node->table), p->path),
				 errdetail("This is a cycle: each document would contain its own parent again."),
				 errhint("Remove the child at %s.", node->path)));
}

/* ---- replica identity ---- */

/* Does the table's replica identity log the old values of w's columns? */
static bool
identity_covers(FlussoWatch *w, char **name)
{
	Relation	rel = table_open(w->relid, AccessShareLock);
	char		ident = rel->rd_rel->relreplident;
	Bitmapset  *idcols = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_IDENTITY_KEY);
	bool		covered = ident == REPLICA_IDENTITY_FULL;
	int			i;

	*name = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
									   RelationGetRelationName(rel));
	table_close(rel, AccessShareLock);
	if (!covered && ident != REPLICA_IDENTITY_NOTHING)
	{
		covered = true;
		for (i = 0; i < w->ncols; i++)
			covered &= bms_is_member(w->attnums[i] - FirstLowInvalidHeapAttributeNumber,
									 idcols);
	}
	return covered;
}

static void
set_identity_full(IndexDef *def, FlussoWatch *w, const char *name)
{
	SPI_connect();
	if (SPI_execute(psprintf("ALTER TABLE %s REPLICA IDENTITY FULL", name), false, 0) < 0)
		elog(ERROR, "could not set REPLICA IDENTITY FULL on %s", name);
	SPI_finish();
	ereport(NOTICE,
			(errmsg("set REPLICA IDENTITY FULL on %s", name),
			 errdetail("flusso.manage_replica_identity is on, and index \"%s\" needs the old values of %s to find the documents a delete or an update affects.",
					   def->name, w->columns_text)));
}

/*
 * A child found through its parent's key needs the old value of that key
 * in the WAL, or a delete (or re-parenting) cannot be mapped to the old
 * parent's document.  Say so, with the fix; or apply the fix.
 */
static void
check_replica_identity(IndexDef *def, bool report)
{
	List	   *seen = NIL;
	ListCell   *lc;

	foreach(lc, flusso_sql_watches(def))
	{
		FlussoWatch *w = lfirst(lc);
		char	   *key = psprintf("%u %s", w->relid, w->columns_text);
		char	   *name;
		ListCell   *sc;
		bool		dup = false;

		foreach(sc, seen)
			dup |= strcmp(lfirst(sc), key) == 0;
		seen = lappend(seen, key);
		if (dup || identity_covers(w, &name))
			continue;
		if (report && flusso_manage_replica_identity)
		{
			set_identity_full(def, w, name);
			continue;
		}
		def->warnings = lappend(def->warnings,
								psprintf("%s|%s|%s", name, w->columns_text, w->path));
		if (report)
			ereport(WARNING,
					(errmsg("deletes and re-parenting in %s cannot be mapped to their documents", name),
					 errdetail("Index \"%s\" finds the documents a row of %s belongs to by %s, but the replica identity of %s does not log the old value%s of %s.",
							   def->name, name, w->columns_text, name,
							   w->ncols > 1 ? "s" : "", w->columns_text),
					 errhint("Run: ALTER TABLE %s REPLICA IDENTITY FULL; (or set flusso.manage_replica_identity = on before creating the index)", name)));
	}
}

/* ---- the whole definition ---- */

static void
check_node(IndexDef *def, DefNode *node, bool report)
{
	ListCell   *lc;

	if (!OidIsValid(node->table.relid))
		resolve_table(&node->table, path_of(node->path, "table"));
	if (node->parent)
	{
		check_node_join(node);
		check_cycle(node);
	}
	check_fields(def, node, report);
	check_filter(def, node, report);
	set_tiebreak(node);
	if (node->value)
		node->value_type = analyze_expression(def, report, &node->table, &node->value, "value",
											  path_of(node->path, "value"), false);
	if (node->order_by)
		(void) analyze_expression(def, report, &node->table, &node->order_by, "order_by",
								  path_of(node->path, "order_by"), true);
	foreach(lc, node->children)
		check_node(def, lfirst(lc), report);
}

void
flusso_def_check(IndexDef *def, bool report)
{
	resolve_table(&def->root->table, "table");
	check_key(def);
	check_node(def, def->root, report);
	check_replica_identity(def, report);
}

static char *
table_access(const DefTable *t, Oid role)
{
	Oid			nsp = get_rel_namespace(t->relid);

	if (pg_namespace_aclcheck(nsp, role, ACL_USAGE) != ACLCHECK_OK)
		return psprintf("role \"%s\" has no USAGE on schema %s",
						GetUserNameFromId(role, false), quote_identifier(t->schema));
	if (pg_class_aclcheck(t->relid, role, ACL_SELECT) != ACLCHECK_OK)
		return psprintf("role \"%s\" has no SELECT on table %s",
						GetUserNameFromId(role, false), qualified(t));
	return NULL;
}

char *
flusso_def_access(IndexDef *def, Oid role)
{
	ListCell   *lc;

	foreach(lc, flusso_def_nodes(def))
	{
		DefNode    *node = lfirst(lc);
		char	   *problem = table_access(&node->table, role);

		if (problem == NULL && node->has_through)
			problem = table_access(&node->through, role);
		if (problem)
			return problem;
	}
	return NULL;
}
