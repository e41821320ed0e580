/*-------------------------------------------------------------------------
 *
 * search.h
 *	  The search engine's client: node list, failover, credentials, TLS.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_SEARCH_H
#define FLUSSO_SEARCH_H

#include "sink/engines.h"
#include "sink/http.h"
#include "status/observer.h"

/* Read the connection settings and credentials (at start and after SIGHUP); true when they changed. */
extern bool flusso_search_configure(void);

/* Is a URL set?  Without one the sink is a dry run. */
extern bool flusso_search_configured(void);

/* Start a request to the current node; path starts with '/'. */
extern FlussoHttpRequest *flusso_search_start(const char *method, const char *path,
											  const char *content_type,
											  const char *body, size_t body_len);

/* Did the engine answer 401 or 403 saying the token or key expired? */
extern bool flusso_search_auth_expired(const FlussoHttpRequest *req);

/*
 * After such an answer: read the credential files again; true when they
 * changed, so the request is worth sending once more.
 */
extern bool flusso_search_renew_credentials(const FlussoHttpRequest *req);

/* Did the request fail at the transport level (so another node may do)? */
extern bool flusso_search_transport_failed(const FlussoHttpRequest *req);

/* Note that a node failed: later requests go to the next one. */
extern void flusso_search_node_failed(int node);

/* Run one request to completion, failing over once through every node. */
extern FlussoHttpRequest *flusso_search_request(const char *method, const char *path,
												const char *content_type,
												const char *body);

/* An index or alias name as one path segment: all but [A-Za-z0-9-._~] percent-encoded. */
extern char *flusso_search_path_segment(const char *name);

/* A string as a JSON string literal, quotes included. */
extern char *flusso_json_quote(const char *s);

/*
 * Ask the cluster which engine and version it is; report the outcome to
 * the observer.  An engine flusso does not support is
 * FLUSSO_SEARCH_UNSUPPORTED.
 */
extern FlussoReachability flusso_search_ping(void);
extern FlussoReachability flusso_search_ping_within(long timeout_ms);

/* The engine the last GET / found (kind FLUSSO_ENGINE_UNKNOWN: none yet, or since forgotten). */
extern const FlussoEngineInfo *flusso_search_engine(void);

/* Why the engine is not known: the last GET /'s failure. */
extern const char *flusso_search_unknown_reason(void);

/* Why the engine is refused, or NULL (supported, or not known). */
extern const char *flusso_search_refusal(void);

/* The same, asking GET / first when the engine is not known (for a second at most). */
extern const char *flusso_search_engine_checked(void);

#endif							/* FLUSSO_SEARCH_H */
