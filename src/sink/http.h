/*-------------------------------------------------------------------------
 *
 * http.h
 *	  HTTP requests over libcurl's multi interface, waited on with the latch.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_HTTP_H
#define FLUSSO_HTTP_H

#include <curl/curl.h>

#include "lib/ilist.h"

typedef struct FlussoHttpRequest
{
	/* all malloc'd: libcurl memory is not palloc memory */
	CURL	   *easy;
	struct curl_slist *headers;
	const char *body;			/* request body (the caller's), or NULL */
	size_t		body_len;
	char	   *response;		/* NUL-terminated response body */
	size_t		response_len;
	size_t		response_cap;
	size_t		response_limit; /* larger answers are cut, with a flag */
	bool		response_truncated;

	/* the outcome, once done */
	bool		done;
	CURLcode	result;
	long		status;
	char		errbuf[CURL_ERROR_SIZE];
	double		elapsed_ms;

	/* free for the caller */
	void	   *user;
	int			node;

	dlist_node	done_node;		/* in http.c's queue of finished requests */
} FlussoHttpRequest;

typedef struct FlussoHttpOptions
{
	const char *user;			/* basic; with aws_sigv4, the access key id */
	const char *password;		/* basic; with aws_sigv4, the secret key */
	const char *authorization;	/* the Authorization header's value, or NULL */
	const char *aws_sigv4;		/* CURLOPT_AWS_SIGV4 "aws:amz:<region>:<service>", or NULL */
	const char *aws_session_token;	/* x-amz-security-token, or NULL */
	bool		aws_content_sha256; /* send x-amz-content-sha256 (signed) */
	const char *ca_file;
	const char *client_cert;
	const char *client_key;
	bool		tls_verify;
	long		timeout_ms;
} FlussoHttpOptions;

extern void flusso_http_init(void);

/*
 * Start a request.  body (may be NULL) stays the caller's and must outlive
 * the request.  Returns at once; the transfer progresses in
 * flusso_http_wait().
 */
extern FlussoHttpRequest *flusso_http_start(const char *method, const char *url,
											const char *content_type,
											const char *body, size_t body_len,
											const FlussoHttpOptions *opts);

/*
 * A request that is not sent: it is done at once, failed with message as
 * its transport error (the settings do not allow any request).
 */
extern FlussoHttpRequest *flusso_http_refuse(const char *message);

/*
 * Wait up to timeout_ms for the latch, a socket or curl's timer, and drive
 * the transfers.  Returns the WL_* events that ended the wait
 * (WL_LATCH_SET when the latch was set; the caller resets it).
 */
extern int	flusso_http_wait(long timeout_ms, uint32 wait_event_info);

/* Completed requests, oldest first; NULL when none. */
extern FlussoHttpRequest *flusso_http_next_done(void);

extern int	flusso_http_in_flight(void);

/* Wait for one request, servicing interrupts; the latch stays set for the caller. */
extern void flusso_http_run(FlussoHttpRequest *req);

extern void flusso_http_free(FlussoHttpRequest *req);

/* Abandon every request in flight (after an error). */
extern void flusso_http_abort_all(void);
extern void flusso_http_reset(void);

/* A one-line description of a failed request, for logs and status. */
extern char *flusso_http_describe_failure(const FlussoHttpRequest *req);

#endif							/* FLUSSO_HTTP_H */
