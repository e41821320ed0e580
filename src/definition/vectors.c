/*-------------------------------------------------------------------------
 *
 * vectors.c
 *	  pgvector's types in documents and mappings: vector(n) and halfvec(n)
 *	  become a vector field of n dimensions; sparsevec is refused.
 *
 * pgvector is found by its types' names (vector, halfvec, sparsevec), in
 * whatever schema it was installed; flusso does not depend on it.
 *
 * A vector's text form is "[1,2,3]", and json_build_object() would write
 * it as that string, which no engine takes as a vector: the generated
 * SQL casts it to real[] (pgvector's own casts), whose JSON is an array
 * of numbers.  Its mapping (mapping.c) is the engine-neutral
 * {"type": "knn_vector", "dimension": n}, which the worker puts into the
 * engine's dialect when it creates the index (sink/engines.c).
 *
 * Refused, with a hint: sparsevec (OpenSearch's knn_vector and
 * Elasticsearch's dense_vector are dense; Elasticsearch's sparse_vector
 * holds token weights, not numbered dimensions), a vector without a
 * dimension (both engines' mappings need it), and lists or aggregates
 * of vectors (neither engine indexes several vectors in one field).
 *
 * It must not read tables nor talk to a search engine.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "definition/vectors.h"

FlussoVectorKind
flusso_vector_kind(Oid type)
{
	HeapTuple	tup;
	FlussoVectorKind kind = FLUSSO_NOT_A_VECTOR;
	const char *name;

	if (!OidIsValid(type))
		return kind;
	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(getBaseType(type)));
	if (!HeapTupleIsValid(tup))
		return kind;
	name = NameStr(((Form_pg_type) GETSTRUCT(tup))->typname);
	if (strcmp(name, "vector") == 0)
		kind = FLUSSO_VECTOR;
	else if (strcmp(name, "halfvec") == 0)
		kind = FLUSSO_HALFVEC;
	else if (strcmp(name, "sparsevec") == 0)
		kind = FLUSSO_SPARSEVEC;
	ReleaseSysCache(tup);
	return kind;
}

void
flusso_vector_check(Oid type, int32 typmod, bool several, const char *path)
{
	Oid			elem = OidIsValid(type) ? get_element_type(getBaseType(type)) : InvalidOid;
	FlussoVectorKind kind;

	if (OidIsValid(elem))
	{
		type = elem;
		several = true;
	}
	kind = flusso_vector_kind(type);
	if (kind == FLUSSO_NOT_A_VECTOR)
		return;
	if (kind == FLUSSO_SPARSEVEC)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the sparsevec at %s cannot be indexed", path),
				 errdetail("OpenSearch's knn_vector and Elasticsearch's dense_vector hold dense vectors; Elasticsearch's sparse_vector holds token weights, not a sparsevec's numbered dimensions."),
				 errhint("Index it as a dense vector with an expression at %s, such as \"my_column::vector(1000)\", or leave it out of \"columns\".", path)));
	if (several)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the vectors at %s are not one vector per field", path),
				 errdetail("OpenSearch and Elasticsearch index one vector per vector field: not an array, a \"many\" list or an aggregate of them."),
				 errhint("Index one vector per field at %s: a column, an expression, or the value of a \"one\" child.", path)));
	if (typmod < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the vector at %s has no dimension", path),
				 errdetail("A vector field is mapped with its number of dimensions (knn_vector's dimension, dense_vector's dims)."),
				 errhint("Declare the column as %s(n), or write an expression with a cast at %s, such as \"my_column::%s(384)\".",
						 kind == FLUSSO_HALFVEC ? "halfvec" : "vector", path,
						 kind == FLUSSO_HALFVEC ? "halfvec" : "vector")));
}

char *
flusso_vector_value_sql(char *sql, Oid type)
{
	FlussoVectorKind kind = flusso_vector_kind(type);

	if (kind == FLUSSO_VECTOR || kind == FLUSSO_HALFVEC)
		return psprintf("(%s)::pg_catalog.float4[]", sql);
	return sql;
}
