/*-------------------------------------------------------------------------
 *
 * parse.c
 *	  Parses an index definition from JSON into the model, checking its form.
 *
 * This file owns the definition language: which keys exist where, what
 * JSON type each takes, which node types there are and which keys each
 * allows.  It must not touch a catalog nor raise a PostgreSQL error: every
 * problem comes back as a DefError carrying the path in the definition
 * (for example "children[0].on"), so the parser can run on any input,
 * including a fuzzer's.  Table and column existence, keys and types are
 * checked later, by check.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include <json-c/json.h>

#include "utils/errcodes.h"

#include "definition/definition.h"
#include "definition/parse.h"

typedef struct ParseState
{
	IndexDef   *def;
	DefError   *err;
	int			next_id;
} ParseState;

static const char *const root_keys[] = {
	"table", "key", "columns", "filter", "children", "on_error", "opensearch", NULL
};
static const char *const child_keys[] = {
	"name", "table", "type", "on", "through", "columns", "value", "filter",
	"order_by", "limit", "children", NULL
};
static const char *const column_keys[] = {"name", "column", "expr", NULL};
static const char *const through_keys[] = {"table", "parent", "child", NULL};
static const char *const opensearch_keys[] = {"settings", "mappings", NULL};

static const char *const kind_names[] = {
	"root", "many", "one", "count", "sum", "min", "max", "avg"
};

const char *
flusso_def_kind_name(DefKind kind)
{
	return kind_names[kind];
}

static char *
join_path(const char *base, const char *key)
{
	if (base == NULL || base[0] == '\0')
		return pstrdup(key);
	return psprintf("%s.%s", base, key);
}

static char *
index_path(const char *base, const char *key, int i)
{
	return psprintf("%s[%d]", join_path(base, key), i);
}

static bool
fail(ParseState *ps, int sqlstate, const char *path, char *message,
	 char *detail, char *hint)
{
	ps->err->sqlstate = sqlstate;
	ps->err->path = pstrdup(path && path[0] ? path : "(the definition)");
	ps->err->message = message;
	ps->err->detail = detail;
	ps->err->hint = hint;
	return false;
}

static char *
key_list(const char *const *keys)
{
	char	   *list = pstrdup("");
	int			i;

	for (i = 0; keys[i]; i++)
		list = psprintf("%s%s\"%s\"", list, i ? ", " : "", keys[i]);
	return list;
}

/* Every key of obj must be one of keys. */
static bool
check_keys(ParseState *ps, json_object *obj, const char *const *keys,
		   const char *path, const char *what)
{
	json_object_object_foreach(obj, key, val)
	{
		int			i;
		bool		known = false;

		(void) val;
		for (i = 0; keys[i] && !known; i++)
			known = strcmp(keys[i], key) == 0;
		if (!known)
			return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, join_path(path, key),
						psprintf("unknown key \"%s\" in %s", key, what),
						psprintf("The keys allowed in %s are %s.", what, key_list(keys)),
						psprintf("Remove or correct the key at %s.", join_path(path, key)));
	}
	return true;
}

static const char *
json_type_word(json_object *v)
{
	switch (json_object_get_type(v))
	{
		case json_type_null:
			return "null";
		case json_type_boolean:
			return "a boolean";
		case json_type_double:
		case json_type_int:
			return "a number";
		case json_type_object:
			return "an object";
		case json_type_array:
			return "an array";
		case json_type_string:
			return "a string";
	}
	return "a value";
}

static bool
wrong_type(ParseState *ps, const char *path, json_object *v, const char *want)
{
	return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, path,
				psprintf("%s must be %s", path, want),
				psprintf("It is %s.", json_type_word(v)),
				psprintf("Give %s at %s.", want, path));
}

/*
 * Does the string v hold a NUL character?  If so, fill the error: C strings
 * and PostgreSQL text would cut it short.
 */
static bool
has_nul(ParseState *ps, json_object *v, const char *path)
{
	if (memchr(json_object_get_string(v), '\0', json_object_get_string_len(v)) == NULL)
		return false;
	fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, path,
		 psprintf("%s contains a NUL character", path),
		 pstrdup("PostgreSQL text cannot hold NUL characters."),
		 psprintf("Remove the NUL character at %s.", path));
	return true;
}

/* An optional non-empty string member; *out stays NULL when absent. */
static bool
get_string(ParseState *ps, json_object *obj, const char *key, const char *path,
		   char **out)
{
	json_object *v;
	char	   *p = join_path(path, key);

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &v))
		return true;
	if (!json_object_is_type(v, json_type_string))
		return wrong_type(ps, p, v, "a string");
	if (json_object_get_string_len(v) == 0)
		return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, p,
					psprintf("%s must not be empty", p),
					pstrdup("An empty string names nothing."),
					psprintf("Give a value at %s, or leave the key out.", p));
	if (has_nul(ps, v, p))
		return false;
	*out = pstrdup(json_object_get_string(v));
	return true;
}

static bool
require_string(ParseState *ps, json_object *obj, const char *key,
			   const char *path, const char *what, char **out)
{
	if (!get_string(ps, obj, key, path, out))
		return false;
	if (*out == NULL)
		return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, path,
					psprintf("%s has no \"%s\"", path[0] ? path : "the definition", key),
					psprintf("\"%s\" is required: it names %s.", key, what),
					psprintf("Add \"%s\" at %s.", key, join_path(path, key)));
	return true;
}

/* A field or child name: becomes a key of the OpenSearch document. */
static bool
check_field_name(ParseState *ps, const char *name, const char *path)
{
	if (name[0] == '_')
		return fail(ps, ERRCODE_INVALID_NAME, path,
					psprintf("field name \"%s\" at %s starts with an underscore", name, path),
					pstrdup("OpenSearch reserves names that start with \"_\" for its metadata fields."),
					psprintf("Rename the field at %s.", path));
	if (strchr(name, '.'))
		return fail(ps, ERRCODE_INVALID_NAME, path,
					psprintf("field name \"%s\" at %s contains a dot", name, path),
					pstrdup("OpenSearch reads a dot in a field name as a path into an object."),
					psprintf("Rename the field at %s, or nest it as a child.", path));
	return true;
}

/* Field names must be unique within one object of the document. */
static bool
check_unique_name(ParseState *ps, List *seen, const char *name, const char *path)
{
	ListCell   *lc;

	foreach(lc, seen)
	{
		if (strcmp(lfirst(lc), name) == 0)
			return fail(ps, ERRCODE_DUPLICATE_COLUMN, path,
						psprintf("field \"%s\" appears twice in one object", name),
						psprintf("The second one is at %s.", path),
						psprintf("Rename the field at %s.", path));
	}
	return true;
}

static bool
parse_column(ParseState *ps, json_object *v, const char *path, DefField **out)
{
	DefField   *f = palloc0(sizeof(DefField));

	f->path = pstrdup(path);
	if (json_object_is_type(v, json_type_string))
	{
		if (json_object_get_string_len(v) == 0)
			return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, path,
						psprintf("%s is an empty column name", path),
						pstrdup("An empty string names no column."),
						psprintf("Give a column name at %s.", path));
		if (has_nul(ps, v, path))
			return false;
		f->name = pstrdup(json_object_get_string(v));
		f->column = f->name;
	}
	else if (json_object_is_type(v, json_type_object))
	{
		if (!check_keys(ps, v, column_keys, path, "a column entry") ||
			!require_string(ps, v, "name", path, "the document field", &f->name) ||
			!get_string(ps, v, "column", path, &f->column) ||
			!get_string(ps, v, "expr", path, &f->expr))
			return false;
		if ((f->column == NULL) == (f->expr == NULL))
			return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, path,
						psprintf("%s needs exactly one of \"column\" and \"expr\"", path),
						pstrdup("A field is either a column, renamed, or an SQL expression over the row."),
						psprintf("Give \"column\" or \"expr\" at %s.", path));
	}
	else
		return wrong_type(ps, path, v, "a column name or an object");
	if (!check_field_name(ps, f->name, path))
		return false;
	*out = f;
	return true;
}

static bool
parse_columns(ParseState *ps, json_object *obj, DefNode *node, List **names)
{
	json_object *arr;
	char	   *path = join_path(node->path, "columns");
	size_t		i;

	if (!json_object_object_get_ex(obj, "columns", &arr))
	{
		node->all_columns = true;
		return true;
	}
	if (!json_object_is_type(arr, json_type_array))
		return wrong_type(ps, path, arr, "an array");
	for (i = 0; i < json_object_array_length(arr); i++)
	{
		DefField   *f = NULL;
		char	   *p = index_path(node->path, "columns", (int) i);

		if (!parse_column(ps, json_object_array_get_idx(arr, i), p, &f) ||
			!check_unique_name(ps, *names, f->name, p))
			return false;
		*names = lappend(*names, f->name);
		node->fields = lappend(node->fields, f);
	}
	return true;
}

/* {"a": "b", ...} -> DefJoin; left = keys, right = values. */
static bool
parse_join(ParseState *ps, json_object *v, const char *path, const char *what,
		   DefJoin *join)
{
	int			n = 0;

	if (!json_object_is_type(v, json_type_object))
		return wrong_type(ps, path, v, "an object of column pairs");
	join->path = pstrdup(path);
	join->ncols = json_object_object_length(v);
	if (join->ncols == 0)
		return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, path,
					psprintf("%s is empty", path),
					psprintf("It must pair at least one column: %s.", what),
					psprintf("Give the column pairs at %s, or leave it out to use the foreign key.", path));
	join->left = palloc0(sizeof(char *) * join->ncols);
	join->right = palloc0(sizeof(char *) * join->ncols);
	{
		json_object_object_foreach(v, key, val)
		{
			char	   *p = join_path(path, key);

			if (!json_object_is_type(val, json_type_string) ||
				json_object_get_string_len(val) == 0)
				return wrong_type(ps, p, val, "a column name");
			if (has_nul(ps, val, p))
				return false;
			if (key[0] == '\0')
				return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, path,
							psprintf("%s pairs an empty column name", path),
							pstrdup("An empty string names no column."),
							psprintf("Correct the pair at %s.", path));
			join->left[n] = pstrdup(key);
			join->right[n] = pstrdup(json_object_get_string(val));
			n++;
		}
	}
	return true;
}

static bool
parse_table(ParseState *ps, json_object *obj, const char *path, DefTable *table)
{
	return require_string(ps, obj, "table", path, "the table to read", &table->text);
}

static bool
parse_through(ParseState *ps, json_object *v, DefNode *node)
{
	char	   *path = join_path(node->path, "through");
	json_object *m;

	if (!json_object_is_type(v, json_type_object))
		return wrong_type(ps, path, v, "an object");
	if (!check_keys(ps, v, through_keys, path, "\"through\"") ||
		!parse_table(ps, v, path, &node->through))
		return false;
	node->has_through = true;
	if (json_object_object_get_ex(v, "parent", &m) &&
		!parse_join(ps, m, join_path(path, "parent"),
					"link table column to parent column", &node->through_parent))
		return false;
	if (json_object_object_get_ex(v, "child", &m) &&
		!parse_join(ps, m, join_path(path, "child"),
					"link table column to child column", &node->through_child))
		return false;
	return true;
}

static bool
parse_kind(ParseState *ps, json_object *obj, DefNode *node)
{
	char	   *type;
	int			k;

	if (!require_string(ps, obj, "type", node->path, "the relationship", &type))
		return false;
	for (k = DEF_MANY; k <= DEF_AVG; k++)
	{
		if (strcmp(type, kind_names[k]) == 0)
		{
			node->kind = (DefKind) k;
			return true;
		}
	}
	return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, join_path(node->path, "type"),
				psprintf("unknown type \"%s\" at %s", type, join_path(node->path, "type")),
				pstrdup("The known types are \"many\", \"one\", \"count\", \"sum\", \"min\", \"max\" and \"avg\"."),
				psprintf("Use one of the known types at %s.", join_path(node->path, "type")));
}

/* Which keys fit which node type. */
static bool
check_kind_keys(ParseState *ps, json_object *obj, DefNode *node)
{
	bool		aggregate = node->kind >= DEF_COUNT;
	bool		has_columns = json_object_object_get_ex(obj, "columns", NULL);
	bool		has_children = json_object_object_get_ex(obj, "children", NULL);
	const char *t = kind_names[node->kind];

	if (aggregate && (has_columns || has_children))
		return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, node->path,
					psprintf("a \"%s\" child cannot have \"%s\"", t, has_columns ? "columns" : "children"),
					psprintf("A \"%s\" child is one number computed over the child rows.", t),
					psprintf("Remove \"%s\" at %s.", has_columns ? "columns" : "children", node->path));
	if (node->kind == DEF_COUNT && node->value)
		return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, join_path(node->path, "value"),
					pstrdup("a \"count\" child cannot have \"value\""),
					pstrdup("count counts the child rows that match the filter."),
					psprintf("Remove \"value\" at %s, or use \"sum\", \"min\", \"max\" or \"avg\".", node->path));
	if (aggregate && node->kind != DEF_COUNT && node->value == NULL)
		return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, node->path,
					psprintf("a \"%s\" child needs \"value\"", t),
					psprintf("\"value\" is the column or expression to %s.", t),
					psprintf("Add \"value\" at %s.", node->path));
	if (node->value && (has_columns || has_children))
		return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, node->path,
					psprintf("%s has both \"value\" and \"%s\"", node->path,
							 has_columns ? "columns" : "children"),
					pstrdup("With \"value\" the child is a scalar (or an array of scalars), not an object."),
					psprintf("Keep either \"value\" or \"%s\" at %s.",
							 has_columns ? "columns" : "children", node->path));
	if (aggregate && node->order_by)
		return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, join_path(node->path, "order_by"),
					psprintf("a \"%s\" child cannot have \"order_by\"", t),
					pstrdup("An aggregate does not depend on the order of the rows."),
					psprintf("Remove \"order_by\" at %s.", node->path));
	return true;
}

/*
 * "limit": a "many" child keeps its first N rows per parent, in the order of
 * its "order_by" (then of its key).
 */
static bool
parse_limit(ParseState *ps, json_object *obj, DefNode *node)
{
	json_object *v;
	char	   *path = join_path(node->path, "limit");
	int64_t		n = 0;

	if (!json_object_object_get_ex(obj, "limit", &v))
		return true;
	if (node->kind != DEF_MANY)
		return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, path,
					psprintf("a \"%s\" child cannot have \"limit\"", kind_names[node->kind]),
					pstrdup("\"limit\" keeps the first rows of an array, and only a \"many\" child is an array."),
					psprintf("Remove \"limit\" at %s, or make the child \"many\".", node->path));
	if (json_object_is_type(v, json_type_int))
		n = json_object_get_int64(v);
	if (n < 1 || n > INT_MAX)
		return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, path,
					psprintf("%s must be a positive integer", path),
					json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double) ?
					psprintf("It is %s; \"limit\" is how many child rows to keep per parent, from 1 to %d.",
							 json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), INT_MAX) :
					psprintf("It is %s.", json_type_word(v)),
					psprintf("Give the number of rows to keep at %s, such as 10.", path));
	node->limit = (int) n;
	return true;
}

static bool parse_children(ParseState *ps, json_object *obj, DefNode *node,
						   List **names, int depth);

static bool
parse_child(ParseState *ps, json_object *obj, DefNode *parent, int i, int depth,
			List **sibling_names)
{
	DefNode    *node = palloc0(sizeof(DefNode));
	json_object *v;
	List	   *names = NIL;

	node->path = index_path(parent->path, "children", i);
	node->parent = parent;
	node->id = ps->next_id++;
	if (!json_object_is_type(obj, json_type_object))
		return wrong_type(ps, node->path, obj, "an object");
	if (!check_keys(ps, obj, child_keys, node->path, "a child") ||
		!require_string(ps, obj, "name", node->path, "the field of the parent document", &node->name) ||
		!check_field_name(ps, node->name, join_path(node->path, "name")) ||
		!check_unique_name(ps, *sibling_names, node->name, join_path(node->path, "name")) ||
		!parse_table(ps, obj, node->path, &node->table) ||
		!parse_kind(ps, obj, node) ||
		!get_string(ps, obj, "value", node->path, &node->value) ||
		!get_string(ps, obj, "filter", node->path, &node->filter) ||
		!get_string(ps, obj, "order_by", node->path, &node->order_by) ||
		!check_kind_keys(ps, obj, node) ||
		!parse_limit(ps, obj, node))
		return false;
	*sibling_names = lappend(*sibling_names, node->name);
	if (json_object_object_get_ex(obj, "on", &v) &&
		!parse_join(ps, v, join_path(node->path, "on"),
					"child column to parent column", &node->on))
		return false;
	if (json_object_object_get_ex(obj, "through", &v) && !parse_through(ps, v, node))
		return false;
	if (node->has_through && node->on.ncols > 0)
		return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, node->path,
					psprintf("%s has both \"on\" and \"through\"", node->path),
					pstrdup("A child joins its parent either directly (\"on\") or through a link table (\"through\")."),
					psprintf("Keep one of them at %s.", node->path));
	if (node->kind <= DEF_ONE && node->value == NULL &&
		!parse_columns(ps, obj, node, &names))
		return false;
	parent->children = lappend(parent->children, node);
	return parse_children(ps, obj, node, &names, depth + 1);
}

static bool
parse_children(ParseState *ps, json_object *obj, DefNode *node, List **names,
			   int depth)
{
	json_object *arr;
	size_t		i;
	char	   *path = join_path(node->path, "children");

	if (!json_object_object_get_ex(obj, "children", &arr))
		return true;
	if (!json_object_is_type(arr, json_type_array))
		return wrong_type(ps, path, arr, "an array");
	if (depth >= FLUSSO_MAX_DEPTH && json_object_array_length(arr) > 0)
		return fail(ps, ERRCODE_PROGRAM_LIMIT_EXCEEDED, path,
					psprintf("children are nested more than %d levels deep", FLUSSO_MAX_DEPTH),
					pstrdup("Each level is one more join in every document build."),
					psprintf("Flatten the definition at %s.", path));
	for (i = 0; i < json_object_array_length(arr); i++)
		if (!parse_child(ps, json_object_array_get_idx(arr, i), node, (int) i,
						 depth, names))
			return false;
	return true;
}

static bool
parse_key(ParseState *ps, json_object *obj, IndexDef *def)
{
	json_object *v;
	size_t		i;

	if (!json_object_object_get_ex(obj, "key", &v))
		return true;
	if (json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0)
	{
		if (has_nul(ps, v, "key"))
			return false;
		def->key = list_make1(pstrdup(json_object_get_string(v)));
		return true;
	}
	if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0)
		return wrong_type(ps, "key", v, "a column name or a non-empty array of column names");
	for (i = 0; i < json_object_array_length(v); i++)
	{
		json_object *c = json_object_array_get_idx(v, i);

		if (!json_object_is_type(c, json_type_string) || json_object_get_string_len(c) == 0)
			return wrong_type(ps, psprintf("key[%d]", (int) i), c, "a column name");
		if (has_nul(ps, c, psprintf("key[%d]", (int) i)))
			return false;
		def->key = lappend(def->key, pstrdup(json_object_get_string(c)));
	}
	return true;
}

static bool
parse_opensearch(ParseState *ps, json_object *obj, IndexDef *def)
{
	json_object *os;
	json_object *v;

	if (!json_object_object_get_ex(obj, "opensearch", &os))
		return true;
	if (!json_object_is_type(os, json_type_object))
		return wrong_type(ps, "opensearch", os, "an object");
	if (!check_keys(ps, os, opensearch_keys, "opensearch", "\"opensearch\""))
		return false;
	if (json_object_object_get_ex(os, "settings", &v))
	{
		if (!json_object_is_type(v, json_type_object))
			return wrong_type(ps, "opensearch.settings", v, "an object");
		def->index_settings = pstrdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	}
	if (json_object_object_get_ex(os, "mappings", &v))
	{
		if (!json_object_is_type(v, json_type_object))
			return wrong_type(ps, "opensearch.mappings", v, "an object");
		def->index_mappings = pstrdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	}
	return true;
}

static bool
parse_on_error(ParseState *ps, json_object *obj, IndexDef *def)
{
	char	   *policy;

	def->on_error = -1;
	if (!get_string(ps, obj, "on_error", "", &policy))
		return false;
	if (policy == NULL)
		return true;
	if (strcmp(policy, "stop") == 0)
		def->on_error = 0;
	else if (strcmp(policy, "skip") == 0)
		def->on_error = 1;
	else if (strcmp(policy, "dead_letter") == 0)
		def->on_error = 2;
	else
		return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, "on_error",
					psprintf("unknown failure policy \"%s\"", policy),
					pstrdup("The policies are \"stop\", \"skip\" and \"dead_letter\"."),
					pstrdup("Use one of them at on_error, or leave it out to follow flusso.on_error."));
	return true;
}

static bool
parse_root(ParseState *ps, json_object *obj)
{
	IndexDef   *def = ps->def;
	DefNode    *root = palloc0(sizeof(DefNode));
	List	   *names = NIL;

	root->path = pstrdup("");
	root->kind = DEF_ROOT;
	root->id = ps->next_id++;
	def->root = root;
	if (!json_object_is_type(obj, json_type_object))
		return fail(ps, ERRCODE_INVALID_PARAMETER_VALUE, "",
					pstrdup("an index definition must be a JSON object"),
					psprintf("It is %s.", json_type_word(obj)),
					pstrdup("Give an object such as {\"table\": \"public.users\"}."));
	return check_keys(ps, obj, root_keys, "", "the definition") &&
		parse_table(ps, obj, "", &root->table) &&
		parse_key(ps, obj, def) &&
		get_string(ps, obj, "filter", "", &root->filter) &&
		parse_on_error(ps, obj, def) &&
		parse_opensearch(ps, obj, def) &&
		parse_columns(ps, obj, root, &names) &&
		parse_children(ps, obj, root, &names, 1);
}

/*
 * Index names follow a strict pattern, checked before anything is sent:
 * lower-case letters (any script), digits, "-", "_" and "." inside, at most
 * FLUSSO_MAX_INDEX_NAME bytes, starting with a letter or a digit.  No "%",
 * no wildcard, no separator OpenSearch reads in a path or a list ("*", ",",
 * "/", "#", ":", ...), and no "_" followed by digits at the end, which is
 * how flusso names the physical indexes of its generations (an index
 * "users_2" would collide with generation 2 of "users").
 */
bool
flusso_index_name_valid(const char *name, const char **why)
{
	const unsigned char *p;
	const char *tail;

	*why = NULL;
	if (name[0] == '\0')
		*why = "it is empty";
	else if (strlen(name) > FLUSSO_MAX_INDEX_NAME)
		*why = "it is longer than 48 bytes";
	else if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9') ||
			   (unsigned char) name[0] >= 0x80))
		*why = "it does not start with a lower-case letter or a digit";
	for (p = (const unsigned char *) name; *why == NULL && *p; p++)
	{
		if (*p >= 'A' && *p <= 'Z')
			*why = "it contains upper case letters";
		else if (*p < 0x80 && !((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
								*p == '-' || *p == '_' || *p == '.'))
			*why = "it contains a character other than lower-case letters, digits, \"-\", \"_\" and \".\"";
	}
	tail = strrchr(name, '_');
	if (*why == NULL && tail && tail[1] != '\0' && strspn(tail + 1, "0123456789") == strlen(tail + 1))
		*why = "it ends with \"_\" and digits, the way flusso names the generations of an index";
	if (*why == NULL && strstr(name, ".."))
		*why = "it contains \"..\"";
	return *why == NULL;
}

bool
flusso_def_parse(const char *name, const char *json, IndexDef **result, DefError *err)
{
	ParseState	ps;
	json_tokener *tok;
	json_object *obj;
	enum json_tokener_error jerr;
	const char *why;
	bool		ok;

	memset(err, 0, sizeof(*err));
	ps.err = err;
	ps.next_id = 0;
	ps.def = palloc0(sizeof(IndexDef));
	ps.def->name = pstrdup(name);
	if (!flusso_index_name_valid(name, &why))
		return fail(&ps, ERRCODE_INVALID_NAME, "name",
					psprintf("\"%s\" is not a valid index name", name),
					psprintf("Index names are lower-case letters, digits, \"-\", \"_\" and \".\", starting with a letter or a digit; this one is invalid because %s.", why),
					pstrdup("Choose a name such as \"users\" or \"orders-v2\"."));

	tok = json_tokener_new_ex(64);
	obj = json_tokener_parse_ex(tok, json, (int) strlen(json));
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_success && json_tokener_get_parse_end(tok) < strlen(json))
	{
		size_t		end = json_tokener_get_parse_end(tok);

		while (json[end] == ' ' || json[end] == '\n' || json[end] == '\t' || json[end] == '\r')
			end++;
		if (json[end] != '\0')
			jerr = json_tokener_error_parse_unexpected;
	}
	json_tokener_free(tok);
	if (jerr != json_tokener_success || obj == NULL)
	{
		json_object_put(obj);
		return fail(&ps, ERRCODE_INVALID_TEXT_REPRESENTATION, "",
					pstrdup("the index definition is not valid JSON"),
					psprintf("The JSON parser says: %s.",
							 jerr != json_tokener_success ? json_tokener_error_desc(jerr) : "empty input"),
					pstrdup("Pass the definition as a jsonb value."));
	}
	ok = parse_root(&ps, obj);
	json_object_put(obj);
	if (!ok)
		return false;
	ps.def->nnodes = ps.next_id;
	*result = ps.def;
	return true;
}

static void
collect_nodes(DefNode *node, List **out)
{
	ListCell   *lc;

	*out = lappend(*out, node);
	foreach(lc, node->children)
		collect_nodes(lfirst(lc), out);
}

List *
flusso_def_nodes(IndexDef *def)
{
	List	   *nodes = NIL;

	collect_nodes(def->root, &nodes);
	return nodes;
}
