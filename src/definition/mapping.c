/*-------------------------------------------------------------------------
 *
 * mapping.c
 *	  The OpenSearch index body (settings and mappings) of a definition.
 *
 * This file owns how PostgreSQL types map to OpenSearch field types when
 * the user gives no mapping, and how the user's settings and mappings are
 * laid over those defaults: a field the user maps replaces ours, except
 * that object fields merge their "properties".  The body also carries a
 * _meta.flusso marker, by which flusso later recognizes indexes it made.
 *
 * It writes JSON only: it must not read a catalog nor talk to OpenSearch
 * (the worker sends the body, sink/opensearch.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "catalog/pg_type.h"
#include "access/htup_details.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "definition/definition.h"
#include "definition/mapping.h"

static json_object *
typed(const char *type)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string(type));
	return o;
}

static json_object *
text_mapping(void)
{
	json_object *o = typed("text");
	json_object *fields = json_object_new_object();
	json_object *kw = typed("keyword");

	json_object_object_add(kw, "ignore_above", json_object_new_int(256));
	json_object_object_add(fields, "keyword", kw);
	json_object_object_add(o, "fields", fields);
	return o;
}

/* Is the type called name?  (for extension types with no fixed OID) */
static bool
type_is_named(Oid type, const char *name)
{
	HeapTuple	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(type));
	bool		result = false;

	if (HeapTupleIsValid(tup))
	{
		result = strcmp(NameStr(((Form_pg_type) GETSTRUCT(tup))->typname), name) == 0;
		ReleaseSysCache(tup);
	}
	return result;
}

static json_object *
type_mapping(Oid type)
{
	Oid			elem;

	type = getBaseType(type);
	elem = get_element_type(type);
	if (OidIsValid(elem))
		return type_mapping(elem);	/* OpenSearch fields are multi-valued */
	switch (type)
	{
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case NAMEOID:
			return text_mapping();
		case INT2OID:
		case INT4OID:
			return typed("integer");
		case INT8OID:
		case OIDOID:
			return typed("long");
		case FLOAT4OID:
			return typed("float");
		case FLOAT8OID:
		case NUMERICOID:
			return typed("double");
		case BOOLOID:
			return typed("boolean");
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			return typed("date");
		case JSONOID:
		case JSONBOID:
			return typed("object");
		case INETOID:
			return typed("ip");
		case BYTEAOID:
			{
				json_object *o = typed("text");

				json_object_object_add(o, "index", json_object_new_boolean(0));
				return o;
			}
		default:
			break;
	}
	if (type_is_named(type, "citext"))
		return text_mapping();
	return typed("keyword");
}

static json_object *
aggregate_mapping(DefNode *node)
{
	Oid			t = OidIsValid(node->value_type) ? getBaseType(node->value_type) : InvalidOid;

	switch (node->kind)
	{
		case DEF_COUNT:
			return typed("long");
		case DEF_AVG:
			return typed("double");
		case DEF_SUM:
			return typed(t == INT2OID || t == INT4OID || t == INT8OID ? "long" : "double");
		default:
			return type_mapping(node->value_type);
	}
}

static json_object *node_properties(DefNode *node);

static json_object *
child_mapping(DefNode *child)
{
	json_object *o;

	if (child->kind >= DEF_COUNT)
		return aggregate_mapping(child);
	if (child->value)
		return type_mapping(child->value_type);
	o = json_object_new_object();
	json_object_object_add(o, "properties", node_properties(child));
	return o;
}

static json_object *
node_properties(DefNode *node)
{
	json_object *props = json_object_new_object();
	ListCell   *lc;

	foreach(lc, node->fields)
	{
		DefField   *f = lfirst(lc);

		json_object_object_add(props, f->name, type_mapping(f->type));
	}
	foreach(lc, node->children)
	{
		DefNode    *c = lfirst(lc);

		json_object_object_add(props, c->name, child_mapping(c));
	}
	return props;
}

/* Lay one field's user mapping over ours. */
static void merge_properties(json_object *ours, json_object *user);

static json_object *
merge_field(json_object *ours, json_object *user)
{
	json_object *up;
	json_object *op;

	if (ours == NULL || !json_object_is_type(user, json_type_object) ||
		!json_object_object_get_ex(user, "properties", &up) ||
		!json_object_object_get_ex(ours, "properties", &op))
		return json_object_get(user);
	{
		json_object_object_foreach(user, key, val)
		{
			if (strcmp(key, "properties") != 0)
				json_object_object_add(ours, key, json_object_get(val));
		}
	}
	merge_properties(op, up);
	return json_object_get(ours);
}

static void
merge_properties(json_object *ours, json_object *user)
{
	json_object_object_foreach(user, key, val)
	{
		json_object *mine = NULL;
		json_object *merged;

		json_object_object_get_ex(ours, key, &mine);
		merged = merge_field(mine, val);
		json_object_object_add(ours, key, merged);
	}
}

static json_object *
parse_object(const char *text)
{
	json_object *o = text ? json_tokener_parse(text) : NULL;

	if (o && !json_object_is_type(o, json_type_object))
	{
		json_object_put(o);
		o = NULL;
	}
	return o ? o : json_object_new_object();
}

static json_object *
build_mappings(IndexDef *def, const char *database, int64 generation)
{
	json_object *mappings = json_object_new_object();
	json_object *props = node_properties(def->root);
	json_object *user = parse_object(def->index_mappings);
	json_object *meta = json_object_new_object();
	json_object *marker = json_object_new_object();

	json_object_object_add(mappings, "properties", props);
	{
		json_object_object_foreach(user, key, val)
		{
			if (strcmp(key, "properties") == 0 && json_object_is_type(val, json_type_object))
				merge_properties(props, val);
			else if (strcmp(key, "_meta") != 0)
				json_object_object_add(mappings, key, json_object_get(val));
		}
	}
	json_object_object_add(marker, "index", json_object_new_string(def->name));
	if (database)
		json_object_object_add(marker, "database", json_object_new_string(database));
	if (generation > 0)
		json_object_object_add(marker, "generation", json_object_new_int64(generation));
	json_object_object_add(meta, "flusso", marker);
	json_object_object_add(mappings, "_meta", meta);
	json_object_put(user);
	return mappings;
}

char *
flusso_index_body(IndexDef *def, const char *database, int64 generation)
{
	json_object *body = json_object_new_object();
	char	   *text;

	json_object_object_add(body, "settings", parse_object(def->index_settings));
	json_object_object_add(body, "mappings", build_mappings(def, database, generation));
	text = pstrdup(json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN));
	json_object_put(body);
	return text;
}
