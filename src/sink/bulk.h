/*-------------------------------------------------------------------------
 *
 * bulk.h
 *	  Bulk requests: NDJSON bodies of index/delete actions, and their outcome.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_BULK_H
#define FLUSSO_BULK_H

#include "datatype/timestamp.h"
#include "lib/ilist.h"
#include "lib/stringinfo.h"

#include "sink/http.h"

typedef enum BulkItemOutcome
{
	BULK_ITEM_PENDING,
	BULK_ITEM_OK,				/* written, stale (409) or already gone (404) */
	BULK_ITEM_RETRY,			/* 429 or 5xx: send again */
	BULK_ITEM_REJECTED			/* to the index's failure policy */
} BulkItemOutcome;

typedef struct BulkItem
{
	int			index;			/* the engine's index number */
	int			generation;
	char	   *id;
	bool		is_delete;
	size_t		start;			/* action line: body[start, doc) */
	size_t		doc;			/* document line: body[doc, end) */
	size_t		end;
	BulkItemOutcome outcome;
	int			status;
	char	   *error;			/* "type: reason" when rejected or retried */
} BulkItem;

typedef enum BulkOwnerKind
{
	BULK_LIVE,
	BULK_BACKFILL,
	BULK_DEAD_LETTER
} BulkOwnerKind;

typedef struct BulkRequest
{
	MemoryContext cxt;			/* everything below lives here */
	StringInfoData body;
	BulkItem   *items;
	int			nitems;
	int			maxitems;

	BulkOwnerKind kind;
	void	   *owner;			/* the engine's batch or chunk */
	int			attempts;
	TimestampTz not_before;		/* retry backoff */

	/* the last attempt */
	FlussoHttpRequest *http;
	TimestampTz sent_at;
	bool		done;
	bool		whole_retry;	/* transport error, 401/403, 429/5xx, unreadable answer */
	bool		too_large;		/* 413 */
	bool		renewed;		/* sent again at once with renewed credentials */
	char	   *failure;		/* why the whole request failed */
	double		elapsed_ms;

	struct BulkRequest *next;	/* in the engine's queues */
	dlist_node	flight_node;	/* in the engine's list of requests in flight */
	dlist_node	done_node;		/* in its sink's queue of finished requests */
} BulkRequest;

extern BulkRequest *flusso_bulk_create(MemoryContext parent, BulkOwnerKind kind,
									   void *owner);
extern void flusso_bulk_free(BulkRequest *req);

/* Append an index action (doc != NULL, doclen bytes) or a delete (doc == NULL). */
extern void flusso_bulk_add(BulkRequest *req, int index, const char *physical,
							int generation, const char *id, uint64 version,
							const char *doc, size_t doclen);

/* A new request holding copies of the given items of req. */
extern BulkRequest *flusso_bulk_subset(BulkRequest *req, bool (*keep) (BulkItem *),
									   int from, int to);

/* bulkparse.c: read a _bulk answer into the items' outcome */
extern bool flusso_bulk_parse(const char *body, size_t len, BulkItem *items,
							  int nitems, char **problem);

#endif							/* FLUSSO_BULK_H */
