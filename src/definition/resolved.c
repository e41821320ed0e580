/*-------------------------------------------------------------------------
 *
 * resolved.c
 *	  The JSON stored for a checked definition: every name resolved.
 *
 * A definition is checked under its author's search_path (check.c), and
 * the check leaves each table schema-qualified and each expression in
 * PostgreSQL's deparsed form.  What is stored, and later read by the worker
 * and by every SQL function, is the JSON as its author wrote it with those
 * strings put in its place: names are resolved once, by whoever defined
 * the index, and mean the same to everyone after (rights.c).
 *
 * It reads and writes JSON only: no catalog access, no SQL.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "definition/definition.h"
#include "definition/resolved.h"

static void
put_string(json_object *obj, const char *key, const char *value)
{
	if (value != NULL && json_object_object_get_ex(obj, key, NULL))
		json_object_object_add(obj, key, json_object_new_string(value));
}

/* The expressions of a node's "columns" entries, in their order. */
static void
put_columns(json_object *obj, DefNode *node)
{
	json_object *arr;
	size_t		i;

	if (node->all_columns || !json_object_object_get_ex(obj, "columns", &arr))
		return;
	for (i = 0; i < json_object_array_length(arr) && i < (size_t) list_length(node->fields); i++)
	{
		json_object *entry = json_object_array_get_idx(arr, i);
		DefField   *f = list_nth(node->fields, (int) i);

		if (json_object_is_type(entry, json_type_object))
			put_string(entry, "expr", f->expr);
	}
}

static void
put_node(json_object *obj, DefNode *node)
{
	json_object *v;
	size_t		i;

	put_string(obj, "table", node->table.text);
	put_string(obj, "filter", node->filter);
	put_string(obj, "value", node->value);
	put_string(obj, "order_by", node->order_by);
	if (node->has_through && json_object_object_get_ex(obj, "through", &v))
		put_string(v, "table", node->through.text);
	put_columns(obj, node);
	if (!json_object_object_get_ex(obj, "children", &v))
		return;
	for (i = 0; i < json_object_array_length(v) && i < (size_t) list_length(node->children); i++)
		put_node(json_object_array_get_idx(v, i), list_nth(node->children, (int) i));
}

char *
flusso_def_resolved_json(IndexDef *def, const char *json)
{
	json_object *root = json_tokener_parse(json);
	char	   *out;

	if (root == NULL)
		elog(ERROR, "a checked definition no longer parses as JSON");
	put_node(root, def->root);
	out = pstrdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
	return out;
}
