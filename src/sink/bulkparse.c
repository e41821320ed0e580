/*-------------------------------------------------------------------------
 *
 * bulkparse.c
 *	  Reads OpenSearch's answer to a _bulk request, item by item.
 *
 * The request asks for filter_path=errors,items.*.status,items.*.error, so
 * the answer is small.  Each item gets an outcome: written (2xx), stale
 * (409 under external versioning) or already gone (404 on a delete) count
 * as done; 429 and 5xx are retried; anything else goes to the index's
 * failure policy with OpenSearch's error type and reason.  Any answer that
 * cannot be read as a bulk answer for exactly these items makes the whole
 * request fail (it is then retried); nothing here trusts the server.
 *
 * This file depends on json-c and palloc only, so a fuzzer can drive it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "sink/bulk.h"

static void
classify(BulkItem *item, int status, json_object *error)
{
	json_object *type = NULL;
	json_object *reason = NULL;

	item->status = status;
	if ((status >= 200 && status < 300) || status == 409 ||
		(status == 404 && item->is_delete))
	{
		item->outcome = BULK_ITEM_OK;
		return;
	}
	item->outcome = (status == 429 || status >= 500) ? BULK_ITEM_RETRY : BULK_ITEM_REJECTED;
	if (error && json_object_is_type(error, json_type_object))
	{
		json_object_object_get_ex(error, "type", &type);
		json_object_object_get_ex(error, "reason", &reason);
	}
	item->error = psprintf("HTTP %d %s: %s", status,
						   type ? json_object_get_string(type) : "error",
						   reason ? json_object_get_string(reason) : "no reason given");
}

/* One element of "items": {"index": {"status": 201, "error": {...}}} */
static bool
parse_item(json_object *elem, BulkItem *item, char **problem)
{
	json_object *action = NULL;
	json_object *status;
	json_object *error = NULL;
	int			status_code;

	if (!json_object_is_type(elem, json_type_object) || json_object_object_length(elem) != 1)
	{
		*problem = pstrdup("an item of the answer is not an object with one action");
		return false;
	}
	{
		json_object_object_foreach(elem, key, val)
		{
			(void) key;
			action = val;
		}
	}
	if (!json_object_is_type(action, json_type_object) ||
		!json_object_object_get_ex(action, "status", &status) ||
		!json_object_is_type(status, json_type_int))
	{
		*problem = pstrdup("an item of the answer has no status");
		return false;
	}
	status_code = json_object_get_int(status);
	if (status_code < 100 || status_code > 599)
	{
		*problem = psprintf("an item of the answer has status %d", status_code);
		return false;
	}
	json_object_object_get_ex(action, "error", &error);
	classify(item, status_code, error);
	return true;
}

static bool
parse_items(json_object *root, BulkItem *items, int nitems, char **problem)
{
	json_object *arr;
	int			i;

	if (!json_object_object_get_ex(root, "items", &arr) ||
		!json_object_is_type(arr, json_type_array))
	{
		*problem = pstrdup("the answer has no items");
		return false;
	}
	if ((int) json_object_array_length(arr) != nitems)
	{
		*problem = psprintf("the answer has %d items for %d actions",
							(int) json_object_array_length(arr), nitems);
		return false;
	}
	for (i = 0; i < nitems; i++)
		if (!parse_item(json_object_array_get_idx(arr, i), &items[i], problem))
			return false;
	return true;
}

/* Is there nothing but white space from p to end? */
static bool
only_white_space(const char *p, const char *end)
{
	for (; p < end; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			return false;
	return true;
}

bool
flusso_bulk_parse(const char *body, size_t len, BulkItem *items, int nitems, char **problem)
{
	json_tokener *tok;
	json_object *root;
	json_object *errors;
	bool		ok = false;
	int			i;

	*problem = NULL;
	if (body == NULL || len == 0 || len > INT_MAX)
	{
		*problem = pstrdup("the answer is empty");
		return false;
	}
	tok = json_tokener_new();
	root = json_tokener_parse_ex(tok, body, (int) len);
	if (json_tokener_get_error(tok) != json_tokener_success || root == NULL ||
		!json_object_is_type(root, json_type_object) ||
		!only_white_space(body + json_tokener_get_parse_end(tok), body + len))
		*problem = pstrdup("the answer is not a JSON object");
	else if (!json_object_object_get_ex(root, "errors", &errors) ||
			 !json_object_is_type(errors, json_type_boolean))
		*problem = pstrdup("the answer has no \"errors\" flag");
	else if (!json_object_get_boolean(errors))
	{
		json_object *arr;

		if (json_object_object_get_ex(root, "items", &arr) &&
			(!json_object_is_type(arr, json_type_array) ||
			 (int) json_object_array_length(arr) != nitems))
		{
			*problem = psprintf("the answer does not have %d items", nitems);
			goto done;
		}
		for (i = 0; i < nitems; i++)
		{
			items[i].outcome = BULK_ITEM_OK;
			items[i].status = 200;
		}
		ok = true;
	}
	else
		ok = parse_items(root, items, nitems, problem);
done:
	json_object_put(root);
	json_tokener_free(tok);
	return ok;
}
