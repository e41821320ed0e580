/*-------------------------------------------------------------------------
 *
 * fuzz_defparse.c
 *	  libFuzzer target: any bytes as an index definition.
 *
 * The input is the definition's JSON text; if it holds a NUL byte, what
 * follows the first one is the index name (else the name is "users").  It
 * goes through flusso_def_parse(), the first half of what
 * flusso_definition_compile() (src/catalog.c) does for create_index,
 * alter_index and the worker.  The second half, flusso_def_check()
 * (src/defcheck.c), resolves tables, columns and expressions against the
 * catalogs and can only run inside a server: it is not fuzzed here.
 *
 * Besides crashes, leaks and undefined behaviour, it checks what
 * defcheck.c, sqlgen.c and mapping.c rely on from a definition the parser
 * accepts, and that a rejected one comes with everything ereport needs:
 *   - an accepted definition has a valid name, a root table, node numbers
 *     0..nnodes-1 in pre-order (flusso_def_nodes), at most FLUSSO_MAX_DEPTH
 *     levels, known node types, fields with a name and exactly one of a
 *     column and an expression, field names that are unique in their object
 *     and neither empty nor start with "_" nor contain ".", aggregates
 *     without fields or children, a value where the type needs one, joins
 *     with non-empty column names, and OpenSearch settings and mappings
 *     that are JSON objects;
 *   - no string the parser takes (every string value outside "opensearch")
 *     holds a NUL character, which would cut it short;
 *   - a rejected one has an SQLSTATE, a path, a message, a detail and a hint.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "utils/memutils.h"

#include "definition/parse.h"

static const char *input;

static void
fail(const char *what, const char *where)
{
	fprintf(stderr, "fuzz_defparse: %s%s%s\ndefinition: %s\n", what,
			where ? " at " : "", where ? where : "", input);
	abort();
}

static bool
valid_field_name(const char *name)
{
	return name != NULL && name[0] != '\0' && name[0] != '_' &&
		strchr(name, '.') == NULL;
}

static void
check_join(const DefJoin *join, const char *path)
{
	int			i;

	if (join->ncols < 0 || (join->ncols > 0 && (join->left == NULL || join->right == NULL)))
		fail("a join has no columns", path);
	for (i = 0; i < join->ncols; i++)
		if (join->left[i] == NULL || join->left[i][0] == '\0' ||
			join->right[i] == NULL || join->right[i][0] == '\0')
			fail("a join has an empty column name", path);
}

static void
check_json_object(const char *json, const char *what)
{
	json_object *obj;

	if (json == NULL)
		return;
	obj = json_tokener_parse(json);
	if (!json_object_is_type(obj, json_type_object))
		fail("OpenSearch settings or mappings are not a JSON object", what);
	json_object_put(obj);
}

static void
check_node(DefNode *node, int depth)
{
	List	   *names = NIL;
	ListCell   *lc;
	ListCell   *lc2;
	bool		aggregate = node->kind >= DEF_COUNT;

	if (node->path == NULL || node->table.text == NULL || node->table.text[0] == '\0')
		fail("a node has no path or no table", node->path);
	if (depth > FLUSSO_MAX_DEPTH)
		fail("children are nested too deep", node->path);
	if (node->kind < DEF_ROOT || node->kind > DEF_AVG ||
		(node->kind == DEF_ROOT) != (node->parent == NULL) ||
		flusso_def_kind_name(node->kind) == NULL)
		fail("a node has a wrong type", node->path);
	if (node->parent && !valid_field_name(node->name))
		fail("a child has an invalid name", node->path);
	if (aggregate && (node->fields != NIL || node->children != NIL || node->order_by))
		fail("an aggregate has fields, children or an order", node->path);
	if (aggregate && (node->kind == DEF_COUNT) != (node->value == NULL))
		fail("an aggregate has a wrong value", node->path);
	if (node->value && (node->fields != NIL || node->children != NIL))
		fail("a scalar child has fields or children", node->path);
	if (node->all_columns && node->fields != NIL)
		fail("a node has all columns and fields", node->path);
	if (node->has_through && node->on.ncols > 0)
		fail("a child has both on and through", node->path);
	if (node->has_through && (node->through.text == NULL || node->through.text[0] == '\0'))
		fail("a link table has no name", node->path);
	check_join(&node->on, node->path);
	check_join(&node->through_parent, node->path);
	check_join(&node->through_child, node->path);

	foreach(lc, node->fields)
	{
		DefField   *f = lfirst(lc);

		if (!valid_field_name(f->name) || f->path == NULL ||
			(f->column == NULL) == (f->expr == NULL) ||
			(f->column && f->column[0] == '\0') || (f->expr && f->expr[0] == '\0'))
			fail("a field is invalid", f->path);
		names = lappend(names, f->name);
	}
	foreach(lc, node->children)
	{
		DefNode    *child = lfirst(lc);

		if (child->parent != node)
			fail("a child does not point to its parent", child->path);
		names = lappend(names, child->name);
		check_node(child, depth + 1);
	}
	foreach(lc, names)
		for (lc2 = lnext(names, lc); lc2; lc2 = lnext(names, lc2))
			if (strcmp(lfirst(lc), lfirst(lc2)) == 0)
				fail("a field name appears twice in one object", node->path);
}

/* Does a string value of v, outside the root's "opensearch", hold a NUL? */
static bool
nul_inside(json_object *v, bool root)
{
	size_t		i;

	switch (json_object_get_type(v))
	{
		case json_type_string:
			return memchr(json_object_get_string(v), '\0',
						  json_object_get_string_len(v)) != NULL;
		case json_type_array:
			for (i = 0; i < json_object_array_length(v); i++)
				if (nul_inside(json_object_array_get_idx(v, i), false))
					return true;
			return false;
		case json_type_object:
			{
				json_object_object_foreach(v, key, val)
				{
					if (!(root && strcmp(key, "opensearch") == 0) &&
						nul_inside(val, false))
						return true;
				}
			}
			return false;
		default:
			return false;
	}
}

static void
check_definition(IndexDef *def, const char *name)
{
	json_object *parsed = json_tokener_parse(input);
	bool		nul = nul_inside(parsed, true);

	json_object_put(parsed);
	if (nul)
		fail("an accepted definition had a NUL character in a string", NULL);

	const char *why;
	List	   *nodes;
	ListCell   *lc;
	int			i = 0;

	if (def == NULL || def->root == NULL || def->name == NULL ||
		strcmp(def->name, name) != 0 || !flusso_index_name_valid(def->name, &why))
		fail("an accepted definition has no root or a wrong name", NULL);
	if (def->on_error < -1 || def->on_error > 2)
		fail("an accepted definition has a wrong failure policy", NULL);
	foreach(lc, def->key)
		if (((char *) lfirst(lc))[0] == '\0')
			fail("a key column has no name", NULL);
	check_json_object(def->index_settings, "opensearch.settings");
	check_json_object(def->index_mappings, "opensearch.mappings");
	check_node(def->root, 1);

	nodes = flusso_def_nodes(def);
	if (list_length(nodes) != def->nnodes)
		fail("nnodes is not the number of nodes", NULL);
	foreach(lc, nodes)
		if (((DefNode *) lfirst(lc))->id != i++)
			fail("nodes are not numbered in pre-order", ((DefNode *) lfirst(lc))->path);
}

static void
check_error(const DefError *err)
{
	if (err->sqlstate == 0 || err->path == NULL || err->path[0] == '\0' ||
		err->message == NULL || err->message[0] == '\0' ||
		err->detail == NULL || err->hint == NULL)
		fail("a rejected definition has an incomplete error", err->path);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "fuzz",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	char	   *json = palloc(size + 1);
	const char *name = "users";
	IndexDef   *def = NULL;
	DefError	err;

	memcpy(json, data, size);
	json[size] = '\0';
	if (memchr(data, '\0', size))
		name = json + strlen(json) + 1;
	input = json;

	if (flusso_def_parse(name, json, &def, &err))
		check_definition(def, name);
	else
		check_error(&err);

	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return 0;
}
