/*-------------------------------------------------------------------------
 *
 * vectors.h
 *	  pgvector's types in documents and mappings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_VECTORS_H
#define FLUSSO_VECTORS_H

typedef enum FlussoVectorKind
{
	FLUSSO_NOT_A_VECTOR,
	FLUSSO_VECTOR,				/* vector(n): float4 */
	FLUSSO_HALFVEC,				/* halfvec(n): float2, sent as numbers alike */
	FLUSSO_SPARSEVEC			/* refused: see vectors.c */
} FlussoVectorKind;

/* Which pgvector type a type (or its domain's base type) is. */
extern FlussoVectorKind flusso_vector_kind(Oid type);

/*
 * Refuse a vector field flusso cannot map: a sparsevec, a vector without
 * a dimension, several vectors in one field (several: the value of a node
 * other than "one"; an array type counts too).  path names the field in the definition.
 */
extern void flusso_vector_check(Oid type, int32 typmod, bool several, const char *path);

/* The SQL of a value, cast so that it becomes a JSON array of numbers if it is a vector. */
extern char *flusso_vector_value_sql(char *sql, Oid type);

#endif							/* FLUSSO_VECTORS_H */
