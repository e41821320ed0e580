/*-------------------------------------------------------------------------
 *
 * sqlgen.c
 *	  Generates the SQL that builds documents and resolves changes.
 *
 * From a checked definition this file writes:
 *	- the build statement: one set-based statement for a whole batch of root
 *	  keys.  Each child level is one grouped aggregate (a CTE), restricted to
 *	  the rows under the batch's parents and joined to its parent by key;
 *	  nothing is computed per root row.  Arrays (and the row a "one" child
 *	  takes) are ordered by the definition's order_by, then by the child's
 *	  key, so that every build writes the same document; a "limit" keeps
 *	  the first rows per parent by a row_number() window over the join.
 *	- the backfill statements: the same, over keyset-paginated key ranges.
 *	- the watches: for every table the index reads, the columns a change
 *	  must carry and the statement that maps those values (from the old and
 *	  the new image) to the root keys of the documents they affect.
 *
 * Conventions of the generated SQL: every identifier is quoted; every table
 * is schema-qualified and aliased by its own name, so that user expressions
 * may name columns as table.column; every function, operator and type is
 * schema-qualified (pg_catalog.count, OPERATOR(pg_catalog.=),
 * pg_catalog.text), and the equality operators that join columns are found
 * through the types' default btree operator families, never by name on a
 * search_path (CVE-2018-1058); our own CTEs and columns are named "~...",
 * which no user table or column realistically uses; user SQL text -- stored
 * already resolved and deparsed, see check.c -- is embedded in
 * parentheses via flusso_sql_fragment().  The text is laid out to be read:
 * flusso.explain() shows it as is.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/stratnum.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "nodes/value.h"
#include "parser/parse_coerce.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "definition/definition.h"
#include "definition/parse.h"
#include "definition/sqlgen.h"

#define MAX_PAIRS_PER_CALL 50	/* json_build_object takes 100 arguments */

static const char *
qtable(const DefTable *t)
{
	return quote_qualified_identifier(t->schema, t->relname);
}

static const char *
qalias(const DefTable *t)
{
	return quote_identifier(t->relname);
}

static char *
qcol(const char *alias, const char *column)
{
	return psprintf("%s.%s", alias, quote_identifier(column));
}

static const char *
type_name(Oid type)
{
	return format_type_be_qualified(type);
}

static Oid
column_type(const DefTable *t, const char *column)
{
	return get_atttype(t->relid, get_attnum(t->relid, column));
}

/* ---- names that no search_path can change ---- */

/* Embed user SQL text so that a trailing "--" comment cannot swallow ours. */
char *
flusso_sql_fragment(const char *text)
{
	return strstr(text, "--") ? psprintf("%s\n", text) : pstrdup(text);
}

char *
flusso_sql_operator_name(Oid opno)
{
	HeapTuple	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	Form_pg_operator op;
	char	   *name;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opno);
	op = (Form_pg_operator) GETSTRUCT(tup);
	name = psprintf("OPERATOR(%s.%s)", quote_identifier(get_namespace_name(op->oprnamespace)),
					NameStr(op->oprname));
	ReleaseSysCache(tup);
	return name;
}

Oid
flusso_sql_equality(Oid ltype, Oid rtype, Oid *common)
{
	int			flags = TYPECACHE_EQ_OPR | TYPECACHE_BTREE_OPFAMILY;
	TypeCacheEntry *l = lookup_type_cache(ltype, flags);
	TypeCacheEntry *r = lookup_type_cache(rtype, flags);
	Oid			op = InvalidOid;

	if (common)
		*common = InvalidOid;
	if (ltype == rtype)
		return l->eq_opr;
	if (OidIsValid(l->btree_opf) && l->btree_opf == r->btree_opf)
		op = get_opfamily_member(l->btree_opf, l->btree_opintype, r->btree_opintype,
								 BTEqualStrategyNumber);
	if (OidIsValid(op))
		return op;
	if (OidIsValid(r->eq_opr) && can_coerce_type(1, &ltype, &rtype, COERCION_IMPLICIT))
		op = r->eq_opr;
	else if (OidIsValid(l->eq_opr) && can_coerce_type(1, &rtype, &ltype, COERCION_IMPLICIT))
		op = l->eq_opr;
	if (OidIsValid(op) && common)
		*common = op == r->eq_opr ? rtype : ltype;
	return op;
}

/* "lhs OPERATOR(s.=) rhs", the operands converted where the operator needs it. */
static char *
eq_sql(const char *lhs, Oid ltype, const char *rhs, Oid rtype)
{
	Oid			common;
	Oid			op = flusso_sql_equality(ltype, rtype, &common);

	if (!OidIsValid(op))
		elog(ERROR, "no equality operator between %s and %s",
			 format_type_be(ltype), format_type_be(rtype));
	if (OidIsValid(common) && ltype != common)
		lhs = psprintf("(%s)::%s", lhs, type_name(common));
	if (OidIsValid(common) && rtype != common)
		rhs = psprintf("(%s)::%s", rhs, type_name(common));
	return psprintf("%s %s %s", lhs, flusso_sql_operator_name(op), rhs);
}

/*
 * The rows of the text[] parameters $1..$n side by side.  (unnest() of
 * several arrays is a shorthand that exists only unqualified: qualified, it
 * is written out as ROWS FROM.)
 */
static char *
unnest_sql(int n)
{
	StringInfoData out;
	int			i;

	initStringInfo(&out);
	if (n > 1)
		appendStringInfoString(&out, "ROWS FROM (");
	for (i = 0; i < n; i++)
		appendStringInfo(&out, "%spg_catalog.unnest($%d::pg_catalog.text[])", i ? ", " : "", i + 1);
	if (n > 1)
		appendStringInfoString(&out, ")");
	return out.data;
}

/* The default ordering's "greater than" of a key type. */
static Oid
key_gt(Oid type)
{
	TypeCacheEntry *tc = lookup_type_cache(type, TYPECACHE_GT_OPR);

	if (!OidIsValid(tc->gt_opr))
		elog(ERROR, "type %s has no default ordering", format_type_be(type));
	return tc->gt_opr;
}

/* The parent-side columns a child joins on. */
static DefJoin *
parent_join(DefNode *node)
{
	return node->has_through ? &node->through_parent : &node->on;
}

static bool
has_rows_cte(DefNode *node)
{
	return node->kind == DEF_ROOT || node->children != NIL;
}

/* ---- aggregates over the same rows share one scan ---- */

static bool
is_aggregate(DefNode *node)
{
	return node->kind >= DEF_COUNT;
}

static bool
same_join(DefJoin *a, DefJoin *b)
{
	int			i;

	if (a->ncols != b->ncols)
		return false;
	for (i = 0; i < a->ncols; i++)
		if (strcmp(a->left[i], b->left[i]) != 0 || strcmp(a->right[i], b->right[i]) != 0)
			return false;
	return true;
}

/*
 * Sibling aggregates over the same table, joined the same way, are computed
 * by one grouped scan: the first of them (the leader) emits it, each with
 * its own FILTER.
 */
static DefNode *
aggregate_leader(DefNode *node)
{
	ListCell   *lc;

	if (!is_aggregate(node))
		return node;
	foreach(lc, node->parent->children)
	{
		DefNode    *c = lfirst(lc);

		if (is_aggregate(c) && c->table.relid == node->table.relid &&
			c->has_through == node->has_through &&
			same_join(&c->on, &node->on) &&
			(!c->has_through || (c->through.relid == node->through.relid &&
								 same_join(&c->through_parent, &node->through_parent) &&
								 same_join(&c->through_child, &node->through_child))))
			return c;
	}
	return node;
}

/* ---- document objects ---- */

static char *
child_value(DefNode *child)
{
	char	   *d = is_aggregate(child) ?
		psprintf("\"~a%d\".\"~d%d\"", aggregate_leader(child)->id, child->id) :
		psprintf("\"~a%d\".\"~d\"", child->id);

	switch (child->kind)
	{
		case DEF_MANY:
			return psprintf("COALESCE(%s, '[]'::pg_catalog.json)", d);
		case DEF_COUNT:
		case DEF_SUM:
			return psprintf("COALESCE(%s, 0)", d);
		default:
			return d;
	}
}

static char *
field_value(DefField *f, const char *alias)
{
	if (f->column)
		return qcol(alias, f->column);
	return psprintf("(%s)", flusso_sql_fragment(f->expr));
}

/*
 * The function that builds the objects: flusso._object(), which writes
 * what json_build_object() writes, faster (docjson.c); json_build_object()
 * while the installed SQL is older than the library.
 */
static const char *
object_function(void)
{
	List	   *name = list_make2(makeString("flusso"), makeString("_object"));
	Oid			any = ANYOID;

	return OidIsValid(LookupFuncName(name, 1, &any, true)) ?
		"flusso._object" : "pg_catalog.json_build_object";
}

/* The object of a node's fields and children, chunked by 50 pairs a call. */
static char *
object_expr(DefNode *node, const char *alias, const char *indent)
{
	const char *fn = object_function();
	List	   *pairs = NIL;
	ListCell   *lc;
	StringInfoData out;
	int			i = 0;
	int			calls;

	foreach(lc, node->fields)
	{
		DefField   *f = lfirst(lc);

		pairs = lappend(pairs, psprintf("%s, %s", quote_literal_cstr(f->name),
										field_value(f, alias)));
	}
	foreach(lc, node->children)
	{
		DefNode    *c = lfirst(lc);

		pairs = lappend(pairs, psprintf("%s, %s", quote_literal_cstr(c->name),
										child_value(c)));
	}
	calls = (list_length(pairs) + MAX_PAIRS_PER_CALL - 1) / MAX_PAIRS_PER_CALL;
	initStringInfo(&out);
	if (calls > 1)
		appendStringInfoString(&out, "(");
	foreach(lc, pairs)
	{
		if (i % MAX_PAIRS_PER_CALL == 0)
			appendStringInfo(&out, "%s%s(\n%s    ",
							 i == 0 ? "" : (calls > 1 ? ")::pg_catalog.jsonb OPERATOR(pg_catalog.||) " : ""),
							 fn, indent);
		else
			appendStringInfo(&out, ",\n%s    ", indent);
		appendStringInfoString(&out, lfirst(lc));
		i++;
	}
	if (pairs == NIL)
		appendStringInfo(&out, "%s(", fn);
	appendStringInfo(&out, "\n%s)", indent);
	if (calls > 1)
		appendStringInfoString(&out, "::pg_catalog.jsonb)::pg_catalog.json");
	return out.data;
}

/* The table whose columns are the left side of a child's join to its parent. */
static const DefTable *
parent_join_table(DefNode *node)
{
	return node->has_through ? &node->through : &node->table;
}

/* LEFT JOINs of a node's row source to its children's aggregates. */
static void
append_child_joins(StringInfo buf, DefNode *node, const char *alias, const char *indent)
{
	ListCell   *lc;

	foreach(lc, node->children)
	{
		DefNode    *c = lfirst(lc);
		DefJoin    *j = parent_join(c);
		int			i;

		if (aggregate_leader(c) != c)
			continue;			/* joined with its leader */
		appendStringInfo(buf, "\n%sLEFT JOIN \"~a%d\" ON ", indent, c->id);
		for (i = 0; i < j->ncols; i++)
			appendStringInfo(buf, "%s%s", i ? " AND " : "",
							 eq_sql(psprintf("\"~a%d\".\"~p%d\"", c->id, i),
									column_type(parent_join_table(c), j->left[i]),
									qcol(alias, j->right[i]),
									column_type(&node->table, j->right[i])));
	}
}

/* ---- the rows of a node under the batch's parents ---- */

/*
 * "EXISTS (SELECT FROM "~rP" AS "~p" WHERE a.x OPERATOR(s.=) "~p".u ...)":
 * the rows of left (aliased alias) under the batch's parent rows.
 */
static char *
restriction(DefJoin *j, const DefTable *left, const char *alias, DefNode *parent)
{
	StringInfoData out;
	int			i;

	initStringInfo(&out);
	appendStringInfo(&out, "EXISTS (SELECT FROM \"~r%d\" AS \"~p\" WHERE ", parent->id);
	for (i = 0; i < j->ncols; i++)
		appendStringInfo(&out, "%s%s", i ? " AND " : "",
						 eq_sql(qcol(alias, j->left[i]), column_type(left, j->left[i]),
								qcol("\"~p\"", j->right[i]),
								column_type(&parent->table, j->right[i])));
	appendStringInfoString(&out, ")");
	return out.data;
}

/*
 * A SELECT of the node's table rows (all columns, and the columns in extra
 * if not "") that belong under the batch's parent rows and (with_filter)
 * pass the node's filter.  Through a link table, the link's parent columns
 * come along as "~p0".. .
 */
static char *
rows_select(DefNode *node, const char *extra, const char *indent, bool with_filter)
{
	const char *alias = qalias(&node->table);
	bool		own_filter = with_filter && node->filter && !is_aggregate(node);
	char	   *filter = own_filter ?
		psprintf("\n%s  AND (%s)", indent, flusso_sql_fragment(node->filter)) : "";
	StringInfoData out;
	int			i;

	initStringInfo(&out);
	if (!node->has_through)
	{
		appendStringInfo(&out, "SELECT %s.*%s\n%sFROM %s AS %s\n%sWHERE %s%s",
						 alias, extra, indent, qtable(&node->table), alias, indent,
						 restriction(&node->on, &node->table, alias, node->parent), filter);
		return out.data;
	}
	appendStringInfo(&out, "SELECT %s.*%s\n%sFROM (SELECT %s.*", alias, extra, indent, alias);
	for (i = 0; i < node->through_parent.ncols; i++)
		appendStringInfo(&out, ", %s AS \"~p%d\"",
						 qcol("\"~l\"", node->through_parent.left[i]), i);
	appendStringInfo(&out, "\n%s      FROM %s AS \"~l\"\n%s      JOIN %s AS %s ON ",
					 indent, qtable(&node->through), indent, qtable(&node->table), alias);
	for (i = 0; i < node->through_child.ncols; i++)
		appendStringInfo(&out, "%s%s", i ? " AND " : "",
						 eq_sql(qcol(alias, node->through_child.right[i]),
								column_type(&node->table, node->through_child.right[i]),
								qcol("\"~l\"", node->through_child.left[i]),
								column_type(&node->through, node->through_child.left[i])));
	appendStringInfo(&out, "\n%s      WHERE %s) AS %s", indent,
					 restriction(&node->through_parent, &node->through, "\"~l\"", node->parent),
					 alias);
	if (own_filter)
		appendStringInfo(&out, "\n%sWHERE (%s)", indent, flusso_sql_fragment(node->filter));
	return out.data;
}

/* The node's rows, without its "limit" (probes read them all). */
static char *
node_rows_filtered(DefNode *node, const char *indent, bool with_filter)
{
	return rows_select(node, "", indent, with_filter);
}

/* The columns a node's aggregate is grouped by, as "~p0".. . */
static char *
group_column(DefNode *node, const char *alias, int i)
{
	if (node->has_through)
		return psprintf("%s.\"~p%d\"", alias, i);
	return qcol(alias, node->on.left[i]);
}

static char *
group_columns(DefNode *node, const char *alias)
{
	StringInfoData out;
	int			i;

	initStringInfo(&out);
	for (i = 0; i < parent_join(node)->ncols; i++)
		appendStringInfo(&out, "%s%s", i ? ", " : "", group_column(node, alias, i));
	return out.data;
}

/*
 * The order of a "many" or "one" node's rows: its order_by, then the
 * columns that break ties (check.c), so that every build orders them
 * alike.  A column whose type has no default ordering, or every column of
 * a table without a key, is compared by its text, byte by byte.
 */
static char *
order_list(DefNode *node, const char *alias)
{
	StringInfoData out;
	ListCell   *lc;

	initStringInfo(&out);
	if (node->order_by)
		appendStringInfoString(&out, flusso_sql_fragment(node->order_by));
	foreach(lc, node->tiebreak)
	{
		char	   *col = qcol(alias, lfirst(lc));
		TypeCacheEntry *tc = lookup_type_cache(column_type(&node->table, lfirst(lc)),
											   TYPECACHE_LT_OPR);

		if (node->tiebreak_text || !OidIsValid(tc->lt_opr))
			col = psprintf("(%s)::pg_catalog.text COLLATE pg_catalog.\"C\"", col);
		appendStringInfo(&out, "%s%s", out.len ? ", " : "", col);
	}
	return out.data;
}

/*
 * The node's rows under the batch's parents that pass its filter, and with
 * a "limit", only the first rows per parent in the node's order (numbered
 * by a window over the parent's join columns).
 */
static char *
node_rows(DefNode *node, const char *indent)
{
	const char *alias = qalias(&node->table);
	char	   *order = order_list(node, alias);
	char	   *number;

	if (node->limit == 0)
		return rows_select(node, "", indent, true);
	number = psprintf(",\n%s         pg_catalog.row_number() OVER (PARTITION BY %s%s%s) AS \"~n\"",
					  indent, group_columns(node, alias), order[0] ? " ORDER BY " : "", order);
	return psprintf("SELECT %s.*\n%sFROM (%s) AS %s\n%sWHERE %s.\"~n\" OPERATOR(pg_catalog.<=) %d",
					alias, indent, rows_select(node, number, psprintf("%s      ", indent), true),
					alias, indent, alias, node->limit);
}

static char *
aggregate_filter(DefNode *node)
{
	if (node->filter == NULL)
		return "";
	return psprintf(" FILTER (WHERE (%s))", flusso_sql_fragment(node->filter));
}

static char *
aggregate_value(DefNode *node, const char *alias, const char *indent)
{
	char	   *order = node->kind == DEF_MANY ? order_list(node, alias) : "";
	char	   *value = node->value ?
		psprintf("(%s)", flusso_sql_fragment(node->value)) : NULL;

	switch (node->kind)
	{
		case DEF_MANY:
			return psprintf("pg_catalog.json_agg(%s%s%s)", value ? value :
							object_expr(node, alias, indent), order[0] ? " ORDER BY " : "", order);
		case DEF_ONE:
			return value ? value : object_expr(node, alias, indent);
		case DEF_COUNT:
			return psprintf("pg_catalog.count(*)%s", aggregate_filter(node));
		case DEF_SUM:
			return psprintf("pg_catalog.sum(%s)%s", value, aggregate_filter(node));
		case DEF_MIN:
			return psprintf("pg_catalog.min(%s)%s", value, aggregate_filter(node));
		case DEF_MAX:
			return psprintf("pg_catalog.max(%s)%s", value, aggregate_filter(node));
		case DEF_AVG:
			return psprintf("pg_catalog.avg(%s)%s", value, aggregate_filter(node));
		case DEF_ROOT:
			break;
	}
	elog(ERROR, "unexpected node kind");
	return NULL;
}

/*
 * An earlier sibling whose rows CTE holds exactly the rows an aggregate
 * reads (same table, same join, no filter or limit of its own): the
 * aggregate reads that CTE instead of finding the rows again.
 */
static DefNode *
shared_rows(DefNode *node)
{
	ListCell   *lc;

	if (!is_aggregate(node) || node->has_through)
		return NULL;
	foreach(lc, node->parent->children)
	{
		DefNode    *c = lfirst(lc);

		if (c == node)
			break;
		if (!is_aggregate(c) && has_rows_cte(c) && !c->has_through && c->filter == NULL &&
			c->limit == 0 &&
			c->table.relid == node->table.relid && same_join(&c->on, &node->on))
			return c;
	}
	return NULL;
}

static void
append_aggregate(StringInfo buf, DefNode *node)
{
	DefNode    *shared = shared_rows(node);
	const char *alias = qalias(&node->table);
	int			n = parent_join(node)->ncols;
	StringInfoData groups;
	int			i;

	initStringInfo(&groups);
	for (i = 0; i < n; i++)
		appendStringInfo(&groups, "%s%s", i ? ", " : "", group_column(node, alias, i));

	appendStringInfo(buf, ",\n\"~a%d\" AS (\n  -- %s: %s %s\n  SELECT %s",
					 node->id, node->path, flusso_def_kind_name(node->kind),
					 qtable(&node->table), node->kind == DEF_ONE ?
					 psprintf("DISTINCT ON (%s) ", groups.data) : "");
	for (i = 0; i < n; i++)
		appendStringInfo(buf, "%s AS \"~p%d\", ", group_column(node, alias, i), i);
	if (is_aggregate(node))
	{
		ListCell   *lc;
		bool		first = true;

		foreach(lc, node->parent->children)
		{
			DefNode    *m = lfirst(lc);

			if (is_aggregate(m) && aggregate_leader(m) == node)
			{
				appendStringInfo(buf, "%s%s AS \"~d%d\"", first ? "" : ",\n    ",
								 aggregate_value(m, alias, "  "), m->id);
				first = false;
			}
		}
	}
	else
		appendStringInfo(buf, "%s AS \"~d\"", aggregate_value(node, alias, "  "));
	if (has_rows_cte(node) || shared)
		appendStringInfo(buf, "\n  FROM \"~r%d\" AS %s", shared ? shared->id : node->id, alias);
	else
		appendStringInfo(buf, "\n  FROM (%s) AS %s", node_rows(node, "        "), alias);
	append_child_joins(buf, node, alias, "  ");
	if (node->kind == DEF_ONE)
	{
		char	   *order = order_list(node, alias);

		appendStringInfo(buf, "\n  ORDER BY %s%s%s", groups.data, order[0] ? ", " : "", order);
	}
	else
		appendStringInfo(buf, "\n  GROUP BY %s", groups.data);
	appendStringInfoString(buf, "\n)");
}

static void
append_node(StringInfo buf, DefNode *node)
{
	ListCell   *lc;

	if (aggregate_leader(node) != node)
		return;					/* computed with its leader */
	if (has_rows_cte(node))
		appendStringInfo(buf, ",\n\"~r%d\" AS (\n  -- %s rows under this batch\n  %s\n)",
						 node->id, node->path, node_rows(node, "  "));
	foreach(lc, node->children)
		append_node(buf, lfirst(lc));
	append_aggregate(buf, node);
}

/* ---- the root ---- */

static char *
key_cast(IndexDef *def, int i, const char *value)
{
	return psprintf("%s::%s", value, type_name(list_nth_oid(def->key_types, i)));
}

/*
 * The document _id from the key columns (parts[i] is column i as SQL): the
 * key's text, or for composite keys the escaped parts joined by '|'.
 */
static char *
id_sql(int nkeys, char **parts)
{
	StringInfoData out;
	int			i;

	if (nkeys == 1)
		return psprintf("%s::pg_catalog.text", parts[0]);
	initStringInfo(&out);
	appendStringInfoString(&out, "pg_catalog.concat_ws('|'");
	for (i = 0; i < nkeys; i++)
		appendStringInfo(&out, ", pg_catalog.replace(pg_catalog.replace(%s::pg_catalog.text, '\\', '\\\\'), '|', '\\|')",
						 parts[i]);
	appendStringInfoString(&out, ")");
	return out.data;
}

static char *
id_expr(IndexDef *def, const char *alias)
{
	int			n = list_length(def->key);
	char	  **parts = palloc(sizeof(char *) * n);
	int			i;

	for (i = 0; i < n; i++)
		parts[i] = psprintf("%s.\"~k%d\"", alias, i);
	return id_sql(n, parts);
}

/*
 * The keyset condition "the key comes after $1..$n": a row comparison with
 * the key types' own "greater than" (one per type, when they live in
 * different schemas).
 */
static char *
keyset_after(IndexDef *def, const char *alias)
{
	int			n = list_length(def->key);
	char	  **cols = palloc(sizeof(char *) * n);
	char	  **params = palloc(sizeof(char *) * n);
	char	  **gts = palloc(sizeof(char *) * n);
	bool		same = true;
	StringInfoData out;
	int			i;
	int			j;

	for (i = 0; i < n; i++)
	{
		cols[i] = qcol(alias, list_nth(def->key, i));
		params[i] = key_cast(def, i, psprintf("$%d::pg_catalog.text", i + 1));
		gts[i] = flusso_sql_operator_name(key_gt(list_nth_oid(def->key_types, i)));
		same &= strcmp(gts[i], gts[0]) == 0;
	}
	initStringInfo(&out);
	if (n == 1 || same)
	{
		for (i = 0; i < n; i++)
			appendStringInfo(&out, "%s%s", i ? ", " : (n > 1 ? "ROW(" : ""), cols[i]);
		appendStringInfo(&out, "%s %s ", n > 1 ? ")" : "", gts[0]);
		for (i = 0; i < n; i++)
			appendStringInfo(&out, "%s%s", i ? ", " : (n > 1 ? "ROW(" : ""), params[i]);
		appendStringInfoString(&out, n > 1 ? ")" : "");
		return out.data;
	}
	appendStringInfoString(&out, "(");
	for (i = 0; i < n; i++)
	{
		appendStringInfo(&out, "%s(", i ? " OR " : "");
		for (j = 0; j < i; j++)
			appendStringInfo(&out, "%s AND ", eq_sql(cols[j], list_nth_oid(def->key_types, j),
													 params[j], list_nth_oid(def->key_types, j)));
		appendStringInfo(&out, "%s %s %s)", cols[i], gts[i], params[i]);
	}
	appendStringInfoString(&out, ")");
	return out.data;
}

/* "alias.k0 OPERATOR(s.=) other.\"~k0\" AND ...": the key columns equal. */
static char *
keys_equal(IndexDef *def, const char *alias, const char *other)
{
	StringInfoData out;
	int			i;

	initStringInfo(&out);
	for (i = 0; i < list_length(def->key); i++)
	{
		Oid			type = list_nth_oid(def->key_types, i);

		appendStringInfo(&out, "%s%s", i ? " AND " : "",
						 eq_sql(qcol(alias, list_nth(def->key, i)), type,
								psprintf("%s.\"~k%d\"", other, i), type));
	}
	return out.data;
}

/* "~k": the batch's keys, from parameters or from a keyset range. */
static void
append_keys(StringInfo buf, IndexDef *def, int mode)
{
	const char *alias = qalias(&def->root->table);
	int			nkeys = list_length(def->key);
	int			i;

	appendStringInfoString(buf, "WITH \"~k\" AS (\n  -- the root keys of this batch\n  SELECT ");
	if (mode == 0)
	{
		appendStringInfoString(buf, "DISTINCT ");
		for (i = 0; i < nkeys; i++)
			appendStringInfo(buf, "%s%s AS \"~k%d\"", i ? ", " : "",
							 key_cast(def, i, psprintf("\"~u\".\"~k%d\"", i)), i);
		appendStringInfo(buf, "\n  FROM %s AS \"~u\"(", unnest_sql(nkeys));
		for (i = 0; i < nkeys; i++)
			appendStringInfo(buf, "%s\"~k%d\"", i ? ", " : "", i);
		appendStringInfoString(buf, ")\n)");
		return;
	}
	for (i = 0; i < nkeys; i++)
		appendStringInfo(buf, "%s%s AS \"~k%d\"", i ? ", " : "",
						 qcol(alias, list_nth(def->key, i)), i);
	appendStringInfo(buf, "\n  FROM %s AS %s\n  WHERE ", qtable(&def->root->table), alias);
	if (mode == 2)
		appendStringInfoString(buf, keyset_after(def, alias));
	else
		appendStringInfoString(buf, "true");
	if (def->root->filter)
		appendStringInfo(buf, "\n    AND (%s)", flusso_sql_fragment(def->root->filter));
	appendStringInfoString(buf, "\n  ORDER BY ");
	for (i = 0; i < nkeys; i++)
		appendStringInfo(buf, "%s%s", i ? ", " : "", qcol(alias, list_nth(def->key, i)));
	appendStringInfo(buf, "\n  LIMIT $%d\n)", mode == 2 ? nkeys + 1 : 1);
}

static void
append_root_rows(StringInfo buf, IndexDef *def)
{
	const char *alias = qalias(&def->root->table);

	appendStringInfo(buf, ",\n\"~r0\" AS (\n  -- the root rows of this batch\n  SELECT %s.*\n  FROM %s AS %s\n  WHERE EXISTS (SELECT FROM \"~k\" WHERE %s)",
					 alias, qtable(&def->root->table), alias,
					 keys_equal(def, alias, "\"~k\""));
	if (def->root->filter)
		appendStringInfo(buf, "\n    AND (%s)", flusso_sql_fragment(def->root->filter));
	appendStringInfoString(buf, "\n)");
}

static void
append_final_select(StringInfo buf, IndexDef *def, bool ordered)
{
	const char *alias = qalias(&def->root->table);
	int			nkeys = list_length(def->key);
	int			i;

	appendStringInfo(buf, "\nSELECT %s AS id,\n  CASE WHEN %s IS NULL THEN NULL ELSE %s::pg_catalog.text END AS doc",
					 id_expr(def, "\"~k\""), qcol(alias, linitial(def->key)),
					 object_expr(def->root, alias, "  "));
	for (i = 0; i < nkeys; i++)
		appendStringInfo(buf, ",\n  \"~k\".\"~k%d\"::pg_catalog.text AS \"~k%d\"", i, i);
	appendStringInfo(buf, "\nFROM \"~k\"\nLEFT JOIN \"~r0\" AS %s ON %s", alias,
					 keys_equal(def, alias, "\"~k\""));
	append_child_joins(buf, def->root, alias, "");
	if (ordered)
	{
		appendStringInfoString(buf, "\nORDER BY ");
		for (i = 0; i < nkeys; i++)
			appendStringInfo(buf, "%s\"~k\".\"~k%d\"", i ? ", " : "", i);
	}
}

/* mode 0: keys from $1..; 1: first keyset page; 2: next keyset page */
static char *
build_sql(IndexDef *def, int mode)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfo(&buf, "-- flusso index \"%s\": %s documents from %s\n",
					 def->name, mode == 0 ? "build" : "backfill", qtable(&def->root->table));
	append_keys(&buf, def, mode);
	append_root_rows(&buf, def);
	foreach(lc, def->root->children)
		append_node(&buf, lfirst(lc));
	append_final_select(&buf, def, mode != 0);
	return buf.data;
}

char *
flusso_sql_build(IndexDef *def)
{
	return build_sql(def, 0);
}

char *
flusso_sql_backfill(IndexDef *def, bool first)
{
	return build_sql(def, first ? 1 : 2);
}

Oid *
flusso_sql_array_types(int n)
{
	Oid		   *types = palloc(sizeof(Oid) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		types[i] = TEXTARRAYOID;
	return types;
}

Oid *
flusso_sql_backfill_types(IndexDef *def, bool first, int *nargs)
{
	int			n = first ? 0 : list_length(def->key);
	Oid		   *types = palloc(sizeof(Oid) * (n + 1));
	int			i;

	for (i = 0; i < n; i++)
		types[i] = TEXTOID;
	types[n] = INT4OID;
	*nargs = n + 1;
	return types;
}

/* The root's key columns as SQL, qualified by alias. */
static char **
key_columns(IndexDef *def, const char *alias)
{
	char	  **cols = palloc(sizeof(char *) * list_length(def->key));
	int			i;

	for (i = 0; i < list_length(def->key); i++)
		cols[i] = qcol(alias, list_nth(def->key, i));
	return cols;
}

/* "SELECT <_id> AS id FROM <root table> AS alias", cols its key columns. */
static void
append_select_ids(StringInfo buf, IndexDef *def, const char *alias, char **cols)
{
	appendStringInfo(buf, "SELECT %s AS id FROM %s AS %s", id_sql(list_length(def->key), cols),
					 qtable(&def->root->table), alias);
}

char *
flusso_sql_document_ids(IndexDef *def)
{
	const char *alias = qalias(&def->root->table);
	StringInfoData buf;

	initStringInfo(&buf);
	append_select_ids(&buf, def, alias, key_columns(def, alias));
	if (def->root->filter)
		appendStringInfo(&buf, " WHERE (%s)", flusso_sql_fragment(def->root->filter));
	return buf.data;
}

/*
 * The ids of a keyset page in key order, without the root filter: $1 the
 * limit (first page), or $1..$k the key after which it starts and $k+1.
 */
char *
flusso_sql_backfill_keys(IndexDef *def, bool first)
{
	const char *alias = qalias(&def->root->table);
	int			n = list_length(def->key);
	char	  **cols = key_columns(def, alias);
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	append_select_ids(&buf, def, alias, cols);
	appendStringInfo(&buf, " WHERE %s ORDER BY ", first ? "true" : keyset_after(def, alias));
	for (i = 0; i < n; i++)
		appendStringInfo(&buf, "%s%s", i ? ", " : "", cols[i]);
	appendStringInfo(&buf, " LIMIT $%d", first ? 1 : n + 1);
	return buf.data;
}

char *
flusso_sql_count(IndexDef *def)
{
	const char *alias = qalias(&def->root->table);

	return psprintf("SELECT pg_catalog.count(*) FROM %s AS %s%s%s%s", qtable(&def->root->table), alias,
					def->root->filter ? " WHERE (" : "",
					def->root->filter ? flusso_sql_fragment(def->root->filter) : "",
					def->root->filter ? ")" : "");
}

/* ---- watches and resolve statements ---- */

/*
 * While walking up from a changed row: the values we know, as SQL
 * expressions, for some columns of the current table.
 */
typedef struct Known
{
	int			n;
	char	  **cols;			/* columns of the current table */
	char	  **exprs;			/* their values */
	bool	   *text;			/* expr is text from the image: cast it */
	Oid		   *types;			/* otherwise: the expression's type */
	int		   *src;			/* for image text: which image column */
} Known;

static int
known_index(const Known *k, const char *col)
{
	int			i;

	for (i = 0; i < k->n; i++)
		if (strcmp(k->cols[i], col) == 0)
			return i;
	return -1;
}

/* "col = its known value" for column i of t (aliased alias); image text is cast first. */
static char *
known_equal(const Known *k, int i, const DefTable *t, const char *alias)
{
	Oid			type = column_type(t, k->cols[i]);

	if (k->text[i])
		return eq_sql(qcol(alias, k->cols[i]), type,
					  psprintf("%s::%s", k->exprs[i], type_name(type)), type);
	return eq_sql(qcol(alias, k->cols[i]), type, k->exprs[i], k->types[i]);
}

static Known *
known_new(int n)
{
	Known	   *k = palloc0(sizeof(Known));

	k->n = n;
	k->cols = palloc0(sizeof(char *) * n);
	k->exprs = palloc0(sizeof(char *) * n);
	k->text = palloc0(sizeof(bool) * n);
	k->types = palloc0(sizeof(Oid) * n);
	k->src = palloc0(sizeof(int) * n);
	return k;
}

/*
 * Make `want` columns of table t known.  Those already known are taken as
 * they are; otherwise t is joined on the known columns.  Returns the new
 * knowledge, expressed in columns `want` of t (renamed to `as` columns).
 */
static Known *
step(StringInfo from, int *nalias, const Known *k, const DefTable *t,
	 char **want, char **as, int nwant)
{
	Known	   *out = known_new(nwant);
	bool		all_known = true;
	char	   *alias;
	int			i;

	for (i = 0; i < nwant; i++)
		all_known &= known_index(k, want[i]) >= 0;
	if (all_known)
	{
		for (i = 0; i < nwant; i++)
		{
			int			j = known_index(k, want[i]);

			out->cols[i] = as[i];
			out->exprs[i] = k->exprs[j];
			out->text[i] = k->text[j];
			out->types[i] = k->types[j];
			out->src[i] = k->src[j];
		}
		return out;
	}
	alias = psprintf("\"~t%d\"", (*nalias)++);
	appendStringInfo(from, "\nJOIN %s AS %s ON ", qtable(t), alias);
	for (i = 0; i < k->n; i++)
		appendStringInfo(from, "%s%s", i ? " AND " : "", known_equal(k, i, t, alias));
	for (i = 0; i < nwant; i++)
	{
		out->cols[i] = as[i];
		out->exprs[i] = qcol(alias, want[i]);
		out->types[i] = column_type(t, want[i]);
	}
	return out;
}

/*
 * Walk from the known columns of node's table (or of its link table, when
 * at_link) up to the root key.
 */
static Known *
walk_up(StringInfo from, int *nalias, Known *k, DefNode *node, bool at_link,
		IndexDef *def)
{
	char	  **key = palloc(sizeof(char *) * list_length(def->key));
	int			i;

	while (node->parent != NULL)
	{
		if (node->has_through)
		{
			if (!at_link)
				k = step(from, nalias, k, &node->table, node->through_child.right,
						 node->through_child.left, node->through_child.ncols);
			k = step(from, nalias, k, &node->through, node->through_parent.left,
					 node->through_parent.right, node->through_parent.ncols);
			at_link = false;
		}
		else
			k = step(from, nalias, k, &node->table, node->on.left, node->on.right,
					 node->on.ncols);
		node = node->parent;
	}
	for (i = 0; i < list_length(def->key); i++)
		key[i] = list_nth(def->key, i);
	return step(from, nalias, k, &node->table, key, key, list_length(def->key));
}

static char *
resolve_sql(FlussoWatch *w, IndexDef *def, Known *start, int **key_map)
{
	StringInfoData from;
	StringInfoData sql;
	int			nalias = 0;
	Known	   *k;
	bool		direct = true;
	int			i;

	initStringInfo(&from);
	k = walk_up(&from, &nalias, start, w->node, w->role == WATCH_LINK, def);
	for (i = 0; i < k->n; i++)
		direct &= k->text[i];
	if (direct && from.len == 0)
	{
		*key_map = palloc(sizeof(int) * k->n);
		for (i = 0; i < k->n; i++)
			(*key_map)[i] = k->src[i];
		return NULL;
	}
	initStringInfo(&sql);
	appendStringInfo(&sql, "-- flusso index \"%s\": documents affected by a change to %s (%s)\nSELECT DISTINCT ",
					 def->name, w->columns_text, w->path[0] ? w->path : "root");
	for (i = 0; i < k->n; i++)
		appendStringInfo(&sql, "%s%s::pg_catalog.text", i ? ", " : "", k->exprs[i]);
	appendStringInfo(&sql, "\nFROM %s AS \"~v\"(", unnest_sql(w->ncols));
	for (i = 0; i < w->ncols; i++)
		appendStringInfo(&sql, "%s\"~c%d\"", i ? ", " : "", i);
	appendStringInfo(&sql, ")%s", from.data);
	*key_map = NULL;
	return sql.data;
}

static FlussoWatch *
new_watch(IndexDef *def, DefNode *node, FlussoWatchRole role, const DefTable *t,
		  char **columns, int ncols)
{
	FlussoWatch *w = palloc0(sizeof(FlussoWatch));
	Known	   *start = known_new(ncols);
	StringInfoData text;
	int			i;

	w->relid = t->relid;
	w->role = role;
	w->node = node;
	w->path = role == WATCH_LINK ? psprintf("%s.through", node->path) : pstrdup(node->path);
	w->ncols = ncols;
	w->columns = columns;
	w->attnums = palloc(sizeof(AttrNumber) * ncols);
	initStringInfo(&text);
	for (i = 0; i < ncols; i++)
	{
		w->attnums[i] = get_attnum(t->relid, columns[i]);
		appendStringInfo(&text, "%s%s.%s", i ? ", " : "", t->relname, columns[i]);
		start->cols[i] = columns[i];
		start->exprs[i] = psprintf("\"~v\".\"~c%d\"", i);
		start->text[i] = true;
		start->src[i] = i;
	}
	w->columns_text = text.data;
	w->resolve_sql = resolve_sql(w, def, start, &w->key_map);
	return w;
}

static void
add_watches(IndexDef *def, DefNode *node, List **out)
{
	ListCell   *lc;

	if (node->kind == DEF_ROOT)
	{
		int			n = list_length(def->key);
		char	  **cols = palloc(sizeof(char *) * n);
		int			i;

		for (i = 0; i < n; i++)
			cols[i] = list_nth(def->key, i);
		*out = lappend(*out, new_watch(def, node, WATCH_ROOT, &node->table, cols, n));
	}
	else if (node->has_through)
	{
		*out = lappend(*out, new_watch(def, node, WATCH_NODE, &node->table,
									   node->through_child.right,
									   node->through_child.ncols));
		*out = lappend(*out, new_watch(def, node, WATCH_LINK, &node->through,
									   node->through_parent.left,
									   node->through_parent.ncols));
	}
	else
		*out = lappend(*out, new_watch(def, node, WATCH_NODE, &node->table,
									   node->on.left, node->on.ncols));
	foreach(lc, node->children)
		add_watches(def, lfirst(lc), out);
}

List *
flusso_sql_watches(IndexDef *def)
{
	List	   *out = NIL;

	add_watches(def, def->root, &out);
	return out;
}

/* ---- probes ---- */

char *
flusso_sql_probe(IndexDef *def, DefNode *node, const char *text, FlussoProbeKind kind)
{
	const char *alias = qalias(&node->table);
	List	   *chain = NIL;
	DefNode    *n;
	ListCell   *lc;
	StringInfoData buf;
	char	   *rows;

	initStringInfo(&buf);
	appendStringInfo(&buf, "-- flusso index \"%s\": a probe of %s\n", def->name,
					 node->path[0] ? node->path : "the root");
	append_keys(&buf, def, 0);
	append_root_rows(&buf, def);
	for (n = node->parent; n != NULL && n->parent != NULL; n = n->parent)
		chain = lcons(n, chain);
	foreach(lc, chain)
	{
		DefNode    *a = lfirst(lc);

		appendStringInfo(&buf, ",\n\"~r%d\" AS (\n  %s\n)", a->id, node_rows(a, "  "));
	}
	if (node->parent != NULL)
		rows = node_rows_filtered(node, "  ", kind != PROBE_FILTER);
	else if (kind == PROBE_FILTER)
		rows = psprintf("SELECT %s.* FROM %s AS %s WHERE EXISTS (SELECT FROM \"~k\" WHERE %s)",
						alias, qtable(&node->table), alias, keys_equal(def, alias, "\"~k\""));
	else
		rows = pstrdup("SELECT * FROM \"~r0\"");
	if (kind == PROBE_ORDER)
		appendStringInfo(&buf, "\nSELECT 1 FROM (%s) AS %s ORDER BY %s", rows, alias,
						 flusso_sql_fragment(text));
	else
		appendStringInfo(&buf, "\nSELECT (%s) FROM (%s) AS %s", flusso_sql_fragment(text), rows, alias);
	return buf.data;
}
