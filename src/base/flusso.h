/*-------------------------------------------------------------------------
 *
 * flusso.h
 *	  What flusso is called: its version, and the names of its extension,
 *	  library and processes.
 *
 * Only names live here.  Each folder's headers declare what its files
 * define: the launcher and the worker are process/launcher.h and
 * process/worker.h, redaction is base/redact.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_H
#define FLUSSO_H

#define FLUSSO_VERSION			"0.4.0"
#define FLUSSO_EXTENSION_NAME	"flusso"
#define FLUSSO_LIBRARY			"flusso"
#define FLUSSO_LAUNCHER_TYPE	"flusso launcher"
#define FLUSSO_WORKER_TYPE		"flusso sync"

#endif							/* FLUSSO_H */
