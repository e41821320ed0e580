/*-------------------------------------------------------------------------
 *
 * http.c
 *	  HTTP transport: libcurl's multi interface inside a PostgreSQL process.
 *
 * This file owns the process's single CURLM handle, whose connection cache
 * keeps connections alive between requests, and the wait that drives it.
 * flusso_http_wait() waits on the process latch, postmaster death and
 * every socket libcurl asked to watch, in one WaitEventSet, so a SIGTERM
 * or SIGHUP is served promptly even while a request is slow.
 *
 * Rules kept here (pg_net shipped the bugs they avoid):
 *	- everything libcurl touches is malloc'd, never palloc'd, and lives in
 *	  process memory only; nothing of it is put in shared memory;
 *	- no PostgreSQL error is raised inside a libcurl callback: callbacks only
 *	  record, and errors surface after curl returns;
 *	- CURLOPT_NOSIGNAL is set on every handle.
 *
 * Authentication is what the options say: basic (libcurl's), an
 * Authorization header given whole, or AWS SigV4 (libcurl's signer,
 * CURLOPT_AWS_SIGV4).  The signer signs every header of
 * CURLOPT_HTTPHEADER, so under SigV4 this file adds only headers that may
 * be signed: x-amz-security-token, x-amz-content-sha256 (the body's
 * SHA-256, computed here: libcurl adds it for s3 only), and the "Expect:"
 * that stops libcurl's 100-continue only with libcurl 8.3 or later
 * (before, the removal is signed though not sent, and every signature
 * fails).  The body goes as CURLOPT_POSTFIELDS: a body sent through a
 * read callback would be signed as empty.
 *
 * It knows nothing about OpenSearch: search.c builds on it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "miscadmin.h"
#include "portability/instr_time.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "base/compat.h"
#include "sink/donequeue.h"
#include "sink/http.h"

#define MAX_SOCKETS 64

typedef struct WatchedSocket
{
	curl_socket_t fd;
	int			what;			/* CURL_POLL_IN / OUT / INOUT */
} WatchedSocket;

static CURLM *multi = NULL;
static WatchedSocket sockets[MAX_SOCKETS];
static int	nsockets = 0;
static bool sockets_changed = true;
static WaitEventSet *wait_set = NULL;	/* rebuilt when the sockets change */
static long curl_timer_ms = -1; /* -1: no timer */
static instr_time curl_timer_set_at;
static int	in_flight = 0;
static DoneQueue done = DONE_QUEUE_INIT(done);

/* Requests started and not yet freed, to abort them all after an error. */
#define MAX_REQUESTS 1024
static FlussoHttpRequest *live_requests[MAX_REQUESTS];

static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	int			i;

	for (i = 0; i < nsockets; i++)
		if (sockets[i].fd == fd)
			break;
	sockets_changed = true;
	if (what == CURL_POLL_REMOVE)
	{
		if (i < nsockets)
			sockets[i] = sockets[--nsockets];
		return 0;
	}
	if (i == nsockets)
	{
		if (nsockets == MAX_SOCKETS)
			return -1;			/* curl fails the transfer; never ereport here */
		nsockets++;
	}
	sockets[i].fd = fd;
	sockets[i].what = what;
	return 0;
}

static int
timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	curl_timer_ms = timeout_ms;
	INSTR_TIME_SET_CURRENT(curl_timer_set_at);
	return 0;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	FlussoHttpRequest *req = (FlussoHttpRequest *) userp;
	size_t		n = size * nmemb;
	size_t		keep = n;

	if (req->response_len + keep > req->response_limit)
	{
		keep = req->response_limit - req->response_len;
		req->response_truncated = true;
	}
	if (req->response_len + keep + 1 > req->response_cap)
	{
		size_t		cap = Max(req->response_cap * 2, req->response_len + keep + 1);
		char	   *grown = realloc(req->response, Max(cap, 4096));

		if (grown == NULL)
			return 0;			/* curl reports CURLE_WRITE_ERROR */
		req->response = grown;
		req->response_cap = Max(cap, 4096);
	}
	memcpy(req->response + req->response_len, data, keep);
	req->response_len += keep;
	req->response[req->response_len] = '\0';
	return n;
}

void
flusso_http_init(void)
{
	static bool global_done = false;

	if (multi != NULL)
		return;
	if (!global_done && curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		elog(ERROR, "could not initialize libcurl");
	global_done = true;
	multi = curl_multi_init();
	if (multi == NULL)
		elog(ERROR, "could not create a libcurl multi handle");
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 16L);
}

static void
track_request(FlussoHttpRequest *req)
{
	int			i;

	for (i = 0; i < MAX_REQUESTS; i++)
	{
		if (live_requests[i] == NULL)
		{
			live_requests[i] = req;
			return;
		}
	}
	elog(ERROR, "too many HTTP requests in flight");
}

static void
set_tls_options(CURL *easy, const FlussoHttpOptions *opts)
{
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, opts->tls_verify ? 1L : 0L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, opts->tls_verify ? 2L : 0L);
	if (opts->ca_file && opts->ca_file[0])
		curl_easy_setopt(easy, CURLOPT_CAINFO, opts->ca_file);
	if (opts->client_cert && opts->client_cert[0])
		curl_easy_setopt(easy, CURLOPT_SSLCERT, opts->client_cert);
	if (opts->client_key && opts->client_key[0])
		curl_easy_setopt(easy, CURLOPT_SSLKEY, opts->client_key);
}

static void
set_request_options(FlussoHttpRequest *req, const char *method, const char *url,
					const FlussoHttpOptions *opts)
{
	CURL	   *easy = req->easy;

	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, req);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, req->errbuf);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, opts->timeout_ms);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, Min(opts->timeout_ms, 10000L));
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, req->headers);
	if (opts->aws_sigv4)
		curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, opts->aws_sigv4);
	if (opts->user && opts->user[0])
	{
		curl_easy_setopt(easy, CURLOPT_USERNAME, opts->user);
		curl_easy_setopt(easy, CURLOPT_PASSWORD, opts->password ? opts->password : "");
	}
	set_tls_options(easy, opts);
	if (req->body != NULL)
	{
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
	}
}

/* Append "name: value" to headers; *ok goes false when out of memory. */
static struct curl_slist *
add_header(struct curl_slist *headers, bool *ok, const char *name, const char *value)
{
	char	   *line = psprintf("%s: %s", name, value);
	struct curl_slist *added = curl_slist_append(headers, line);

	pfree(line);
	if (added == NULL)
	{
		*ok = false;
		return headers;
	}
	return added;
}

/* The hex SHA-256 of body, as x-amz-content-sha256 wants it. */
static char *
body_sha256(const char *body, size_t body_len)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	char	   *hex;
	unsigned int i;

	if (EVP_Digest(body ? body : "", body ? body_len : 0, digest, &len, EVP_sha256(), NULL) != 1)
		elog(ERROR, "could not compute the SHA-256 of a request body");
	hex = palloc(len * 2 + 1);
	for (i = 0; i < len; i++)
		sprintf(hex + i * 2, "%02x", digest[i]);
	return hex;
}

/* Does this libcurl sign a header removal ("Expect:")?  Before 8.3 it does. */
static bool
signs_removed_headers(void)
{
	return curl_version_info(CURLVERSION_NOW)->version_num < 0x080300;
}

/* The request's headers (maybe none); *ok false when out of memory. */
static struct curl_slist *
request_headers(const char *content_type, const char *body, size_t body_len,
				const FlussoHttpOptions *opts, bool *ok_out)
{
	struct curl_slist *headers = NULL;
	struct curl_slist *added;
	bool		ok = true;

	if (content_type)
		headers = add_header(headers, &ok, "Content-Type", content_type);
	if (opts->authorization)
		headers = add_header(headers, &ok, "Authorization", opts->authorization);
	if (opts->aws_sigv4 && opts->aws_session_token)
		headers = add_header(headers, &ok, "x-amz-security-token", opts->aws_session_token);
	if (opts->aws_sigv4 && opts->aws_content_sha256)
		headers = add_header(headers, &ok, "x-amz-content-sha256", body_sha256(body, body_len));
	if (!(opts->aws_sigv4 && signs_removed_headers()))
	{
		added = curl_slist_append(headers, "Expect:");
		ok = ok && added != NULL;
		headers = added ? added : headers;
	}
	*ok_out = ok;
	if (!ok)
	{
		curl_slist_free_all(headers);
		return NULL;
	}
	return headers;
}

FlussoHttpRequest *
flusso_http_refuse(const char *message)
{
	FlussoHttpRequest *req = calloc(1, sizeof(FlussoHttpRequest));

	if (req == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	req->done = true;
	req->result = CURLE_LOGIN_DENIED;
	strlcpy(req->errbuf, message, sizeof(req->errbuf));
	done_queue_push(&done, &req->done_node);
	SetLatch(MyLatch);			/* whoever waits for it collects it at once */
	return req;
}

FlussoHttpRequest *
flusso_http_start(const char *method, const char *url, const char *content_type,
				  const char *body, size_t body_len, const FlussoHttpOptions *opts)
{
	FlussoHttpRequest *req = calloc(1, sizeof(FlussoHttpRequest));
	bool		headers_ok;

	if (req == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	flusso_http_init();
	req->body = body;
	req->body_len = body_len;
	req->response_limit = 256 * 1024 * 1024;
	req->easy = curl_easy_init();
	req->headers = request_headers(content_type, body, body_len, opts, &headers_ok);
	if (req->easy == NULL || !headers_ok)
	{
		flusso_http_free(req);
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	PG_TRY();
	{
		track_request(req);
	}
	PG_CATCH();
	{
		flusso_http_free(req);
		PG_RE_THROW();
	}
	PG_END_TRY();
	set_request_options(req, method, url, opts);
	req->elapsed_ms = 0;
	if (curl_multi_add_handle(multi, req->easy) != CURLM_OK)
	{
		flusso_http_free(req);
		elog(ERROR, "could not start an HTTP request");
	}
	in_flight++;
	return req;
}

/* Move finished transfers from curl to our done list. */
static void
collect_done(void)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		FlussoHttpRequest *req = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &req);
		if (req == NULL)
			continue;
		req->result = msg->data.result;
		curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &req->status);
		{
			double		total = 0;

			curl_easy_getinfo(req->easy, CURLINFO_TOTAL_TIME, &total);
			req->elapsed_ms = total * 1000.0;
		}
		curl_multi_remove_handle(multi, req->easy);
		req->done = true;
		in_flight--;
		done_queue_push(&done, &req->done_node);
	}
}

/* Milliseconds until curl's timer fires, or -1 when none is set. */
static long
curl_timer_remaining(void)
{
	instr_time	now;
	long		elapsed;

	if (curl_timer_ms < 0)
		return -1;
	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, curl_timer_set_at);
	elapsed = (long) INSTR_TIME_GET_MILLISEC(now);
	return Max(0, curl_timer_ms - elapsed);
}

static WaitEventSet *
build_wait_set(void)
{
	WaitEventSet *set;
	int			i;

	if (wait_set != NULL && !sockets_changed)
		return wait_set;
	if (wait_set != NULL)
		FreeWaitEventSet(wait_set);
	wait_set = NULL;
	set = compat_CreateWaitEventSet_top(nsockets + 2);

	AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (i = 0; i < nsockets; i++)
	{
		uint32		ev = 0;

		if (sockets[i].what & CURL_POLL_IN)
			ev |= WL_SOCKET_READABLE;
		if (sockets[i].what & CURL_POLL_OUT)
			ev |= WL_SOCKET_WRITEABLE;
		AddWaitEventToSet(set, ev, sockets[i].fd, NULL, NULL);
	}
	wait_set = set;
	sockets_changed = false;
	return set;
}

static int
drive_sockets(WaitEvent *events, int nevents)
{
	int			result = 0;
	int			running;
	int			i;

	for (i = 0; i < nevents; i++)
	{
		int			mask = 0;

		result |= events[i].events;
		if (events[i].events & WL_LATCH_SET)
			continue;
		if (events[i].events & WL_SOCKET_READABLE)
			mask |= CURL_CSELECT_IN;
		if (events[i].events & WL_SOCKET_WRITEABLE)
			mask |= CURL_CSELECT_OUT;
		if (mask)
			curl_multi_socket_action(multi, events[i].fd, mask, &running);
	}
	return result;
}

int
flusso_http_wait(long timeout_ms, uint32 wait_event_info)
{
	WaitEvent	events[MAX_SOCKETS + 2];
	long		timer;
	long		wait_ms = timeout_ms;
	int			nevents;
	int			result;
	int			running;

	flusso_http_init();
	timer = curl_timer_remaining();
	if (timer >= 0 && (wait_ms < 0 || timer < wait_ms))
		wait_ms = timer;

	nevents = WaitEventSetWait(build_wait_set(), wait_ms, events,
							   lengthof(events), wait_event_info);

	result = drive_sockets(events, nevents);
	if (nevents == 0)
		result |= WL_TIMEOUT;
	if (curl_timer_remaining() == 0)
	{
		curl_timer_ms = -1;
		curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	collect_done();
	return result;
}

FlussoHttpRequest *
flusso_http_next_done(void)
{
	dlist_node *node = done_queue_pop(&done);

	return node ? dlist_container(FlussoHttpRequest, done_node, node) : NULL;
}

int
flusso_http_in_flight(void)
{
	return in_flight;
}

void
flusso_http_run(FlussoHttpRequest *req)
{
	bool		latch_was_set = false;

	while (!req->done)
	{
		int			rc = flusso_http_wait(1000, PG_WAIT_EXTENSION);

		if (rc & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			latch_was_set = true;
		}
		CHECK_FOR_INTERRUPTS();
	}
	done_queue_remove(&req->done_node);
	if (latch_was_set)
		SetLatch(MyLatch);		/* the caller's loop still sees the wakeup */
}

void
flusso_http_free(FlussoHttpRequest *req)
{
	int			i;

	if (req == NULL)
		return;
	for (i = 0; i < MAX_REQUESTS; i++)
		if (live_requests[i] == req)
			live_requests[i] = NULL;
	if (req->easy)
	{
		if (!req->done && multi)
		{
			curl_multi_remove_handle(multi, req->easy);
			in_flight--;
		}
		curl_easy_cleanup(req->easy);
	}
	done_queue_remove(&req->done_node);
	curl_slist_free_all(req->headers);
	free(req->response);
	free(req);
}

void
flusso_http_abort_all(void)
{
	int			i;

	for (i = 0; i < MAX_REQUESTS; i++)
		if (live_requests[i] != NULL)
			flusso_http_free(live_requests[i]);
	done_queue_clear(&done);
}

/*
 * Forget every request and every kept-alive connection: after a change of
 * URL, credentials or TLS settings, no connection opened under the old
 * ones may carry another request.
 */
void
flusso_http_reset(void)
{
	flusso_http_abort_all();
	if (multi != NULL)
		curl_multi_cleanup(multi);
	multi = NULL;
	nsockets = 0;
	sockets_changed = true;
	curl_timer_ms = -1;
	in_flight = 0;
	flusso_http_init();
}

char *
flusso_http_describe_failure(const FlussoHttpRequest *req)
{
	if (req->result != CURLE_OK)
		return psprintf("%s", req->errbuf[0] ? req->errbuf :
						curl_easy_strerror(req->result));
	if (req->status >= 400)
	{
		int			len = (int) Min(req->response_len, 300);

		return psprintf("HTTP %ld: %.*s", req->status, len,
						req->response ? req->response : "");
	}
	return pstrdup("no error");
}
