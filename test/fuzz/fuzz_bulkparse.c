/*-------------------------------------------------------------------------
 *
 * fuzz_bulkparse.c
 *	  libFuzzer target: any bytes as OpenSearch's answer to a _bulk request.
 *
 * It does what the engine does with an answer (src/sink_opensearch.c,
 * classify(), then src/ship.c, handle_done()): builds a request of index
 * and delete actions with src/bulk.c, reads the answer into its items with
 * flusso_bulk_parse() in the request's memory context, and copies the
 * items to retry into a new request with flusso_bulk_subset().  The answer
 * is handed over in a buffer of exactly its length, not NUL-terminated, so
 * reading one byte past it is caught.
 *
 * The request has as many actions as the answer has items (index or delete
 * as the answer says), so that the item-by-item reading is reached; it is
 * read again for one action more and one less, which must fail.  Besides
 * crashes, leaks and undefined behaviour, it checks what the engine relies
 * on:
 *   - false comes with a problem to log, true with none;
 *   - true means every item has an outcome, and the outcome follows from the
 *     item's status: 2xx, 409, and 404 on a delete are done; 429 and 5xx are
 *     retried; anything else is rejected, with an "HTTP <status> ..." error;
 *   - true means the answer has this many items (or none, without errors)
 *     and is one JSON value with nothing after it but white space;
 *   - the retry request holds exactly the items to retry, with their lines.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "utils/memutils.h"

#include "sink/bulk.h"

#define MAX_ITEMS 1024

/* The answer, read independently of bulkparse.c. */
typedef struct Shape
{
	bool		whole;			/* one JSON value, then only white space */
	int			nanswered;		/* length of "items", or -1 */
	int			nitems;			/* actions to put in the request */
	bool		is_delete[MAX_ITEMS];
} Shape;

static void
fail(const char *what, const uint8_t *data, size_t size)
{
	fprintf(stderr, "fuzz_bulkparse: %s\nanswer (%zu bytes): %.*s\n", what,
			size, (int) Min(size, 2000), (const char *) data);
	abort();
}

static void
read_shape(const uint8_t *data, size_t size, Shape *s)
{
	json_tokener *tok = json_tokener_new();
	json_object *root = json_tokener_parse_ex(tok, (const char *) data, (int) size);
	json_object *arr;
	int			i;

	s->whole = false;
	s->nanswered = -1;
	if (root && json_tokener_get_error(tok) == json_tokener_success)
	{
		size_t		end = json_tokener_get_parse_end(tok);

		while (end < size && strchr(" \t\r\n", data[end]) && data[end] != '\0')
			end++;
		s->whole = end == size;
	}
	if (json_object_is_type(root, json_type_object) &&
		json_object_object_get_ex(root, "items", &arr) &&
		json_object_is_type(arr, json_type_array))
		s->nanswered = (int) json_object_array_length(arr);

	if (s->nanswered > 0 && s->nanswered <= MAX_ITEMS)
	{
		s->nitems = s->nanswered;
		for (i = 0; i < s->nitems; i++)
			s->is_delete[i] =
				json_object_object_get_ex(json_object_array_get_idx(arr, i), "delete", NULL);
	}
	else
	{
		s->nitems = 1 + size % 3;
		for (i = 0; i < s->nitems; i++)
			s->is_delete[i] = i % 2 == 1;
	}
	json_object_put(root);
	json_tokener_free(tok);
}

static BulkRequest *
make_request(const Shape *s, int nitems)
{
	BulkRequest *req = flusso_bulk_create(CurrentMemoryContext, BULK_LIVE, NULL);
	int			i;

	static const char doc[] = "{\"id\":1,\"name\":\"\\\"x\\\"\"}";

	for (i = 0; i < nitems; i++)
	{
		char		id[16];
		bool		del = i < s->nitems ? s->is_delete[i] : false;

		snprintf(id, sizeof(id), "%d", i + 1);
		flusso_bulk_add(req, i % 3, "users_1", 1, id, UINT64CONST(1000) + i,
						del ? NULL : doc, del ? 0 : strlen(doc));
	}
	return req;
}

static BulkItemOutcome
expected_outcome(int status, bool is_delete)
{
	if ((status >= 200 && status < 300) || status == 409 ||
		(status == 404 && is_delete))
		return BULK_ITEM_OK;
	if (status == 429 || status >= 500)
		return BULK_ITEM_RETRY;
	return BULK_ITEM_REJECTED;
}

static bool
is_retry(BulkItem *item)
{
	return item->outcome == BULK_ITEM_RETRY;
}

static void
check_retry_subset(BulkRequest *req, const uint8_t *data, size_t size)
{
	BulkRequest *sub = flusso_bulk_subset(req, is_retry, 0, req->nitems);
	int			i;
	int			j = 0;

	for (i = 0; i < req->nitems; i++)
	{
		BulkItem   *a = &req->items[i];
		BulkItem   *b;

		if (!is_retry(a))
			continue;
		if (j >= sub->nitems)
			fail("the retry request misses items", data, size);
		b = &sub->items[j++];
		if (b->outcome != BULK_ITEM_PENDING || strcmp(a->id, b->id) != 0 ||
			a->is_delete != b->is_delete ||
			a->end - a->start != b->end - b->start ||
			memcmp(req->body.data + a->start, sub->body.data + b->start,
				   a->end - a->start) != 0)
			fail("an item of the retry request differs from the original", data, size);
	}
	if (j != sub->nitems || (size_t) sub->body.len != strlen(sub->body.data))
		fail("the retry request has items it should not have", data, size);
	flusso_bulk_free(sub);
}

/* Read the answer for nitems actions, as sink_opensearch.c does. */
static bool
read_answer(const Shape *s, int nitems, const uint8_t *data, size_t size)
{
	BulkRequest *req = make_request(s, nitems);
	MemoryContext old = MemoryContextSwitchTo(req->cxt);
	char	   *problem = (char *) "not set";
	bool		ok;
	int			i;

	ok = flusso_bulk_parse((const char *) data, size, req->items, req->nitems,
						   &problem);
	MemoryContextSwitchTo(old);

	if (!ok && (problem == NULL || problem[0] == '\0'))
		fail("false without a problem", data, size);
	if (ok && problem != NULL)
		fail("true with a problem", data, size);
	if (ok && !s->whole)
		fail("true for an answer that is not one JSON value", data, size);
	if (ok && s->nanswered != -1 && s->nanswered != nitems)
		fail("true for an answer with another number of items", data, size);
	for (i = 0; ok && i < req->nitems; i++)
	{
		BulkItem   *item = &req->items[i];

		if (item->status < 100 || item->status > 599)
			fail("an item has a status out of range", data, size);
		if (item->outcome != expected_outcome(item->status, item->is_delete))
			fail("an item's outcome does not follow from its status", data, size);
		if (item->outcome != BULK_ITEM_OK &&
			(item->error == NULL || strncmp(item->error, "HTTP ", 5) != 0))
			fail("a failed item has no error", data, size);
	}
	if (ok)
		check_retry_subset(req, data, size);
	flusso_bulk_free(req);
	return ok;
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "fuzz",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Shape		s;

	read_shape(data, size, &s);
	if (read_answer(&s, s.nitems, data, size) && s.nanswered != -1)
	{
		if (read_answer(&s, s.nitems + 1, data, size))
			fail("true for one action more than the answer has items", data, size);
		if (read_answer(&s, s.nitems - 1, data, size))
			fail("true for one action less than the answer has items", data, size);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return 0;
}
