/*-------------------------------------------------------------------------
 *
 * engines.h
 *	  The search engines flusso speaks to: which one answers, whether it is
 *	  supported, and an index body in its dialect.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_ENGINES_H
#define FLUSSO_ENGINES_H

#define FLUSSO_ENGINE_VERSION_LEN 32

typedef enum FlussoEngineKind
{
	FLUSSO_ENGINE_UNKNOWN,		/* not asked yet, or did not answer */
	FLUSSO_ENGINE_OPENSEARCH,
	FLUSSO_ENGINE_ELASTICSEARCH
} FlussoEngineKind;

typedef struct FlussoEngineInfo
{
	FlussoEngineKind kind;
	char		version[FLUSSO_ENGINE_VERSION_LEN]; /* version.number as given */
	int			major;
	int			minor;
	bool		compat_version; /* OpenSearch reporting 7.10.2 for old clients */
} FlussoEngineInfo;

/* "opensearch", "elasticsearch", or NULL for FLUSSO_ENGINE_UNKNOWN */
extern const char *flusso_engine_name(FlussoEngineKind kind);

/*
 * Read the answer to GET /.  Returns false, with *problem saying why, when
 * it is not a search engine's answer (no version.number).
 */
extern bool flusso_engine_identify(const char *answer, FlussoEngineInfo *info,
								   char **problem);

/* NULL when flusso supports the engine, else why not (naming what it supports). */
extern char *flusso_engine_refusal(const FlussoEngineInfo *info);

/* What flusso supports, for messages: "OpenSearch 2.x and 3.x, Elasticsearch 8.x". */
extern const char *flusso_engine_supported(void);

/*
 * The engine-neutral index body that definition/mapping.c derives, in the
 * dialect of the engine (vector fields, the settings they need).  NULL,
 * with *problem naming the field's definition path, when a vector field
 * the definition maps has no counterpart on the engine (a knn_vector
 * method on Elasticsearch that dense_vector cannot say).
 */
extern char *flusso_engine_index_body(const FlussoEngineInfo *info, const char *body,
									  char **problem);

#endif							/* FLUSSO_ENGINES_H */
