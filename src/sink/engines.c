/*-------------------------------------------------------------------------
 *
 * engines.c
 *	  The search engines flusso speaks to: which one answers GET /, whether
 *	  flusso supports it, and an index body in its dialect.
 *
 * Supported: OpenSearch 2.x and 3.x, Elasticsearch 8.x, the versions the
 * tests run against (test/t/016_engines.pl).  Elasticsearch 7.x and 9.x,
 * OpenSearch 1.x and anything that does not say what it is are refused:
 * the worker then sends nothing and confirms nothing (search.c, and the
 * gate in opensearch.c).
 *
 * Index bodies.  definition/mapping.c derives one body for every engine
 * when the definition is loaded, in a user backend or in the worker, where
 * the engine may not be known yet.  It writes OpenSearch's types, and for
 * a pgvector column the neutral {"type": "knn_vector", "dimension": n}.
 * Only here, when the worker creates a physical index and knows the engine
 * that answers, is that turned into the engine's own:
 *   - OpenSearch: knn_vector as it is, and "index.knn": true in the
 *     settings unless the definition sets index.knn itself;
 *   - Elasticsearch: {"type": "dense_vector", "dims": n, "similarity":
 *     "l2_norm"} (Elasticsearch's default, cosine, refuses a vector of
 *     zeros; l2 is OpenSearch's default too).
 * A vector field written by hand in the other engine's minimal form
 * (dense_vector with dims on OpenSearch, knn_vector with dimension on
 * Elasticsearch) is translated the same way.  A knn_vector with a method
 * (the definition choosing OpenSearch's k-NN method, e.g. the lucene
 * engine) goes as written to OpenSearch; on Elasticsearch it becomes a
 * dense_vector whose similarity is the method's space (l2 → l2_norm,
 * cosinesimil → cosine, innerproduct → max_inner_product) and whose
 * index_options are the HNSW parameters m and ef_construction; the
 * method's engine, which library builds OpenSearch's graph, has no
 * counterpart and is dropped.  Whatever else such a field says (another
 * method or space, other parameters or keys) has none either: the index
 * body is refused with the field's definition path (opensearch.mappings.
 * properties.NAME), and the worker creates no index.  Anything else the
 * user wrote goes as written.  Every other type flusso derives (text with a
 * keyword subfield, integer, long, float, double, boolean, date, object,
 * ip, keyword) and the body's _meta mean the same on all of them.
 *
 * It reads and writes JSON only: it must not send requests (search.c)
 * nor know definitions (definition/).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "sink/engines.h"

#define ES_TAGLINE "You Know, for Search"

const char *
flusso_engine_name(FlussoEngineKind kind)
{
	switch (kind)
	{
		case FLUSSO_ENGINE_OPENSEARCH:
			return "opensearch";
		case FLUSSO_ENGINE_ELASTICSEARCH:
			return "elasticsearch";
		default:
			return NULL;
	}
}

static const char *
display_name(FlussoEngineKind kind)
{
	return kind == FLUSSO_ENGINE_OPENSEARCH ? "OpenSearch" : "Elasticsearch";
}

const char *
flusso_engine_supported(void)
{
	return "OpenSearch 2.x and 3.x, Elasticsearch 8.x";
}

static const char *
string_member(json_object *obj, const char *key)
{
	json_object *v;

	if (obj && json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

/* Which engine an answer with a version.number comes from. */
static FlussoEngineKind
engine_kind(json_object *root, json_object *version)
{
	const char *distribution = string_member(version, "distribution");
	const char *tagline = string_member(root, "tagline");

	if (distribution != NULL)
		return strcmp(distribution, "opensearch") == 0 ?
			FLUSSO_ENGINE_OPENSEARCH : FLUSSO_ENGINE_UNKNOWN;
	if ((tagline && strcmp(tagline, ES_TAGLINE) == 0) ||
		string_member(version, "build_flavor") != NULL)
		return FLUSSO_ENGINE_ELASTICSEARCH;
	return FLUSSO_ENGINE_UNKNOWN;
}

bool
flusso_engine_identify(const char *answer, FlussoEngineInfo *info, char **problem)
{
	json_object *root = json_tokener_parse(answer ? answer : "");
	json_object *version = NULL;
	const char *number = NULL;

	memset(info, 0, sizeof(*info));
	if (root && json_object_is_type(root, json_type_object) &&
		json_object_object_get_ex(root, "version", &version))
		number = string_member(version, "number");
	if (number == NULL)
	{
		*problem = pstrdup("the answer to GET / carries no version.number");
		json_object_put(root);
		return false;
	}
	info->kind = engine_kind(root, version);
	strlcpy(info->version, number, sizeof(info->version));
	if (sscanf(number, "%d.%d", &info->major, &info->minor) < 1)
		info->major = info->minor = -1;
	info->compat_version = info->kind == FLUSSO_ENGINE_OPENSEARCH && info->major == 7;
	json_object_put(root);
	return true;
}

char *
flusso_engine_refusal(const FlussoEngineInfo *info)
{
	bool		supported;

	if (info->kind == FLUSSO_ENGINE_UNKNOWN)
		return psprintf("the search engine answers GET / with version %s but does not say which engine it is (no version.distribution \"opensearch\", no Elasticsearch tagline); flusso supports %s",
						info->version, flusso_engine_supported());
	if (info->compat_version)
		return psprintf("OpenSearch answers GET / with version %s, which hides its real version (compatibility.override_main_response_version is set); flusso supports %s: set compatibility.override_main_response_version to false on the cluster",
						info->version, flusso_engine_supported());
	supported = info->kind == FLUSSO_ENGINE_OPENSEARCH ?
		(info->major == 2 || info->major == 3) : info->major == 8;
	if (supported)
		return NULL;
	return psprintf("the search engine is %s %s, which flusso does not support; flusso supports %s",
					display_name(info->kind), info->version, flusso_engine_supported());
}

/* ---- index bodies ---- */

/* The first key of an object that is not among keys (NULL-terminated), or NULL. */
static const char *
unlisted_key(json_object *obj, const char *const *keys)
{
	json_object_object_foreach(obj, key, val)
	{
		const char *const *k;
		bool		listed = false;

		(void) val;
		for (k = keys; *k; k++)
			listed = listed || strcmp(*k, key) == 0;
		if (!listed)
			return key;
	}
	return NULL;
}

/* Does a field mapping have only these keys (NULL-terminated)? */
static bool
only_keys(json_object *field, const char *const *keys)
{
	return unlisted_key(field, keys) == NULL;
}

/* The vector field's dimension, if it is in the minimal form of either engine; else -1. */
static int
minimal_vector_dimension(json_object *field)
{
	static const char *const knn_keys[] = {"type", "dimension", NULL};
	static const char *const dense_keys[] = {"type", "dims", NULL};
	const char *type = string_member(field, "type");
	json_object *dim;

	if (type == NULL)
		return -1;
	if (strcmp(type, "knn_vector") == 0 && only_keys(field, knn_keys) &&
		json_object_object_get_ex(field, "dimension", &dim))
		return json_object_get_int(dim);
	if (strcmp(type, "dense_vector") == 0 && only_keys(field, dense_keys) &&
		json_object_object_get_ex(field, "dims", &dim))
		return json_object_get_int(dim);
	return -1;
}

static json_object *
vector_field(FlussoEngineKind kind, int dimension)
{
	json_object *field = json_object_new_object();

	if (kind == FLUSSO_ENGINE_ELASTICSEARCH)
	{
		json_object_object_add(field, "type", json_object_new_string("dense_vector"));
		json_object_object_add(field, "dims", json_object_new_int(dimension));
		json_object_object_add(field, "similarity", json_object_new_string("l2_norm"));
	}
	else
	{
		json_object_object_add(field, "type", json_object_new_string("knn_vector"));
		json_object_object_add(field, "dimension", json_object_new_int(dimension));
	}
	return field;
}

/* Elasticsearch's similarity for an OpenSearch space_type, or NULL. */
static const char *
similarity_of_space(const char *space)
{
	if (strcmp(space, "l2") == 0)
		return "l2_norm";
	if (strcmp(space, "cosinesimil") == 0)
		return "cosine";
	if (strcmp(space, "innerproduct") == 0)
		return "max_inner_product";
	return NULL;
}

/*
 * The HNSW parameters of a knn_vector method as dense_vector index_options
 * ({"type": "hnsw", "m": .., "ef_construction": ..}) into *options; the
 * problem when a parameter has no counterpart.
 */
static char *
hnsw_index_options(json_object *parameters, json_object **options)
{
	static const char *const hnsw_keys[] = {"m", "ef_construction", NULL};
	const char *unknown = unlisted_key(parameters, hnsw_keys);
	json_object *value;

	if (unknown)
		return psprintf("the method parameter \"%s\" (m and ef_construction become dense_vector's index_options)", unknown);
	*options = json_object_new_object();
	json_object_object_add(*options, "type", json_object_new_string("hnsw"));
	if (json_object_object_get_ex(parameters, "m", &value))
		json_object_object_add(*options, "m", json_object_get(value));
	if (json_object_object_get_ex(parameters, "ef_construction", &value))
		json_object_object_add(*options, "ef_construction", json_object_get(value));
	return NULL;
}

/*
 * The knn_vector method's space and HNSW parameters as a dense_vector's
 * similarity and index_options; the problem when it has something
 * Elasticsearch has no counterpart for.
 */
static char *
method_as_dense(json_object *method, const char **space, json_object **options)
{
	static const char *const method_keys[] = {"name", "engine", "space_type", "parameters", NULL};
	json_object *parameters;
	const char *name = string_member(method, "name");
	const char *unknown;

	if (!json_object_is_type(method, json_type_object))
		return pstrdup("a method that is not an object");
	if (name == NULL || strcmp(name, "hnsw") != 0)
		return psprintf("the method \"%s\" (only hnsw has an Elasticsearch counterpart)", name ? name : "(none)");
	if ((unknown = unlisted_key(method, method_keys)) != NULL)
		return psprintf("the method key \"%s\"", unknown);
	if (string_member(method, "space_type"))
		*space = string_member(method, "space_type");
	if (json_object_object_get_ex(method, "parameters", &parameters) &&
		json_object_is_type(parameters, json_type_object) &&
		json_object_object_length(parameters) > 0)
		return hnsw_index_options(parameters, options);
	return NULL;
}

/*
 * A knn_vector with a method, on Elasticsearch: into *dense the dense_vector
 * with the same dimension, space and HNSW parameters; else the problem.
 */
static char *
knn_method_as_dense(json_object *field, json_object **dense)
{
	static const char *const knn_keys[] = {"type", "dimension", "method", "space_type", NULL};
	const char *space = string_member(field, "space_type");
	const char *unknown = unlisted_key(field, knn_keys);
	json_object *dimension = NULL;
	json_object *method = NULL;
	json_object *options = NULL;
	const char *similarity;
	char	   *problem = NULL;

	*dense = NULL;
	if (unknown)
		problem = psprintf("the knn_vector key \"%s\"", unknown);
	json_object_object_get_ex(field, "dimension", &dimension);
	json_object_object_get_ex(field, "method", &method);
	if (problem == NULL && method)
		problem = method_as_dense(method, &space, &options);
	similarity = similarity_of_space(space ? space : "l2");
	if (problem == NULL && similarity == NULL)
		problem = psprintf("the space_type \"%s\" (l2, cosinesimil and innerproduct become dense_vector's similarity)", space);
	if (problem == NULL && dimension == NULL)
		problem = pstrdup("a knn_vector without a dimension");
	if (problem)
	{
		json_object_put(options);
		return problem;
	}
	*dense = json_object_new_object();
	json_object_object_add(*dense, "type", json_object_new_string("dense_vector"));
	json_object_object_add(*dense, "dims", json_object_get(dimension));
	json_object_object_add(*dense, "similarity", json_object_new_string(similarity));
	if (options)
		json_object_object_add(*dense, "index_options", options);
	return NULL;
}

/*
 * Translate the vector fields under properties (at the definition path
 * path); counts OpenSearch's knn_vector fields.  Returns the first field
 * Elasticsearch has no counterpart for, as a message, or NULL.
 */
static char *
translate_properties(FlussoEngineKind kind, json_object *properties, const char *path, int *knn_fields)
{
	char	   *problem = NULL;

	json_object_object_foreach(properties, name, field)
	{
		json_object *nested;
		json_object *dense;
		int			dimension;
		const char *type;
		char	   *field_path = psprintf("%s.%s", path, name);

		if (problem || !json_object_is_type(field, json_type_object))
			continue;
		if (json_object_object_get_ex(field, "properties", &nested) &&
			json_object_is_type(nested, json_type_object))
			problem = translate_properties(kind, nested, psprintf("%s.properties", field_path), knn_fields);
		type = string_member(field, "type");
		if ((dimension = minimal_vector_dimension(field)) > 0)
			json_object_object_add(properties, name, vector_field(kind, dimension));	/* frees field */
		else if (problem == NULL && kind == FLUSSO_ENGINE_ELASTICSEARCH && type && strcmp(type, "knn_vector") == 0)
		{
			char	   *why = knn_method_as_dense(field, &dense);

			if (why)
				problem = psprintf("the knn_vector field at %s has no Elasticsearch counterpart: %s", field_path, why);
			else
				json_object_object_add(properties, name, dense);	/* frees field */
		}
		type = string_member(json_object_object_get(properties, name), "type");
		if (type && strcmp(type, "knn_vector") == 0)
			(*knn_fields)++;
	}
	return problem;
}

/* Does the settings object set index.knn, flat or nested? */
static bool
sets_knn(json_object *settings)
{
	json_object *index;

	return json_object_object_get_ex(settings, "index.knn", NULL) ||
		(json_object_object_get_ex(settings, "index", &index) &&
		 json_object_is_type(index, json_type_object) &&
		 json_object_object_get_ex(index, "knn", NULL));
}

char *
flusso_engine_index_body(const FlussoEngineInfo *info, const char *body, char **problem)
{
	json_object *root = json_tokener_parse(body);
	json_object *mappings;
	json_object *properties;
	json_object *settings;
	int			knn_fields = 0;
	char	   *result;

	*problem = NULL;
	if (root == NULL || !json_object_is_type(root, json_type_object) ||
		info->kind == FLUSSO_ENGINE_UNKNOWN)
	{
		json_object_put(root);
		return pstrdup(body);
	}
	if (json_object_object_get_ex(root, "mappings", &mappings) &&
		json_object_object_get_ex(mappings, "properties", &properties) &&
		json_object_is_type(properties, json_type_object))
		*problem = translate_properties(info->kind, properties, "opensearch.mappings.properties", &knn_fields);
	if (*problem)
	{
		json_object_put(root);
		return NULL;
	}
	if (info->kind == FLUSSO_ENGINE_OPENSEARCH && knn_fields > 0 &&
		json_object_object_get_ex(root, "settings", &settings) &&
		json_object_is_type(settings, json_type_object) && !sets_knn(settings))
		json_object_object_add(settings, "index.knn", json_object_new_boolean(1));
	result = pstrdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
	return result;
}
