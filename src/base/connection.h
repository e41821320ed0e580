/*-------------------------------------------------------------------------
 *
 * connection.h
 *	  The search engine's connection settings: URL, TLS, authentication,
 *	  under their engine-neutral names and their old flusso.opensearch_*
 *	  names.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_CONNECTION_H
#define FLUSSO_CONNECTION_H

typedef enum FlussoAuthMethod
{
	FLUSSO_AUTH_NONE,
	FLUSSO_AUTH_BASIC,			/* user and password, or user:password@ in the URL */
	FLUSSO_AUTH_API_KEY,		/* Authorization: ApiKey ... */
	FLUSSO_AUTH_BEARER,			/* Authorization: Bearer ... */
	FLUSSO_AUTH_SIGV4			/* AWS Signature Version 4 */
} FlussoAuthMethod;

/* The settings in force; the strings are the settings' own ("" when unset). */
typedef struct FlussoConnection
{
	const char *url;			/* with the passwords it may carry */
	const char *user;
	const char *password;
	const char *password_file;
	const char *ca_file;
	const char *client_cert;
	const char *client_key;
	bool		tls_verify;
	const char *api_key;
	const char *api_key_file;
	const char *bearer_token;
	const char *bearer_token_file;
	const char *aws_region;
	const char *aws_service;	/* "es" or "aoss" */
	const char *aws_credentials_file;
	FlussoAuthMethod auth;		/* the one method set (the first, if several are) */
} FlussoConnection;

extern void flusso_define_connection_settings(void);

/*
 * The connection settings in force: each engine-neutral name when it was
 * given a value, else its old name (flusso.search_url, else
 * flusso.opensearch_url).
 */
extern void flusso_connection_get(FlussoConnection *conn);

/* flusso.search_tls_verify (or flusso.opensearch_tls_verify) in force. */
extern bool flusso_connection_tls_verify(void);

/* The name of the URL setting in force: "flusso.search_url" or "flusso.opensearch_url". */
extern const char *flusso_connection_url_setting(void);

/*
 * Why no request can be sent with these settings (two authentication
 * methods, half a SigV4 configuration), with a hint naming the settings;
 * NULL when they are usable.
 */
extern char *flusso_connection_problem(const FlussoConnection *conn, char **hint);

/* The same, were setting name given value (for flusso.check_setting()). */
extern char *flusso_connection_problem_with(const char *name, const char *value, char **hint);

/*
 * The settings set under both names, to different values ("flusso.x and
 * flusso.y"), or NULL: the engine-neutral name wins, and this says so.
 */
extern char *flusso_connection_alias_conflicts(void);

#endif							/* FLUSSO_CONNECTION_H */
