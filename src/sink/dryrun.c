/*-------------------------------------------------------------------------
 *
 * dryrun.c
 *	  The dry-run sink: documents go to the server log, nothing is sent.
 *
 * With flusso.opensearch_url empty the pipeline runs exactly as it would
 * against OpenSearch, but each action is written to the server log (one
 * line per document, or pretty-printed when flusso.pretty is on) and every
 * request is acknowledged at once.  It is what the original daemon's stdout
 * sink was: a way to see what would be sent.  It must not send anything,
 * nor differ from the OpenSearch sink in what the engine sees but the
 * outcome (every item written).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "base/settings.h"
#include "sink/donequeue.h"
#include "sink/sink.h"

static DoneQueue done = DONE_QUEUE_INIT(done);

static char *
dry_prepare_index(const char *physical, const char *body, const char *index_name,
				  bool *created, bool *permanent)
{
	*created = false;
	*permanent = false;
	ereport(LOG, (errmsg("flusso dry run: would create index \"%s\" with %s", physical, body)));
	return NULL;
}

static char *
dry_point_alias(const char *alias, const char *physical)
{
	ereport(LOG, (errmsg("flusso dry run: would point alias \"%s\" at \"%s\"", alias, physical)));
	return NULL;
}

static char *
dry_refresh(const char *alias)
{
	return NULL;
}

static void
dry_drop_leftovers(const char *index_name, const char *database, const char *keep)
{
}

static char *
dry_drop_index(const char *physical, const char *index_name)
{
	ereport(LOG, (errmsg("flusso dry run: would drop index \"%s\"", physical)));
	return NULL;
}

static char *
pretty(const char *doc, size_t len)
{
	json_object *obj;
	char	   *text;

	if (!flusso_pretty)
		return pnstrdup(doc, len);
	obj = json_tokener_parse(pnstrdup(doc, len));
	if (obj == NULL)
		return pnstrdup(doc, len);
	text = pstrdup(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
												  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(obj);
	return text;
}

static void
dry_send(BulkRequest *req)
{
	int			i;

	for (i = 0; i < req->nitems; i++)
	{
		BulkItem   *item = &req->items[i];
		const char *action = req->body.data + item->start;
		size_t		action_len = item->doc - item->start - 1;

		if (item->is_delete)
			ereport(LOG, (errmsg("flusso dry run: %.*s", (int) action_len, action)));
		else
			ereport(LOG, (errmsg("flusso dry run: %.*s\n%s", (int) action_len, action,
								 pretty(req->body.data + item->doc, item->end - item->doc - 1))));
		item->outcome = BULK_ITEM_OK;
		item->status = item->is_delete ? 200 : 201;
	}
	req->done = true;
	req->whole_retry = false;
	req->too_large = false;
	req->sent_at = GetCurrentTimestamp();
	req->elapsed_ms = 0;
	done_queue_push(&done, &req->done_node);
}

static BulkRequest *
dry_next_done(void)
{
	dlist_node *node = done_queue_pop(&done);

	return node ? dlist_container(BulkRequest, done_node, node) : NULL;
}

static int
dry_in_flight(void)
{
	return 0;
}

static int
dry_wait(long timeout_ms)
{
	if (!done_queue_is_empty(&done))
		return 0;
	return WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 timeout_ms, PG_WAIT_EXTENSION);
}

static void
dry_abort_all(void)
{
	done_queue_clear(&done);
}

const FlussoSink flusso_dryrun_sink = {
	.name = "dry run",
	.prepare_index = dry_prepare_index,
	.point_alias = dry_point_alias,
	.drop_index = dry_drop_index,
	.drop_leftovers = dry_drop_leftovers,
	.refresh = dry_refresh,
	.send = dry_send,
	.next_done = dry_next_done,
	.in_flight = dry_in_flight,
	.wait = dry_wait,
	.abort_all = dry_abort_all,
};
