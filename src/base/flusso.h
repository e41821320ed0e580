/*-------------------------------------------------------------------------
 *
 * flusso.h
 *	  Declarations shared by every part of flusso.
 *
 * flusso keeps OpenSearch indexes in sync with PostgreSQL tables from inside
 * the database.  This header only holds what every file needs: the version,
 * the names of the processes and the entry points that _PG_init wires up.
 * Each stage has its own header for the rest.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_H
#define FLUSSO_H

#include "postgres.h"

#define FLUSSO_VERSION			"0.4.0"
#define FLUSSO_EXTENSION_NAME	"flusso"
#define FLUSSO_LIBRARY			"flusso"
#define FLUSSO_LAUNCHER_TYPE	"flusso launcher"
#define FLUSSO_WORKER_TYPE		"flusso sync"

/* launcher.c */
extern void flusso_register_launcher(void);
extern PGDLLEXPORT void flusso_launcher_main(Datum main_arg);

/* worker.c */
extern PGDLLEXPORT void flusso_worker_main(Datum main_arg);
extern bool flusso_in_sync_worker;	/* this process is a sync worker */

/* redact.c: remove credentials from text that may reach a log or a view */
extern char *flusso_redact(const char *text);
extern char *flusso_redact_url_list(const char *value);
extern char *flusso_strip_values(const char *message);
extern void flusso_redact_secret(const char *secret);
extern void flusso_install_log_redaction(void);

#endif							/* FLUSSO_H */
