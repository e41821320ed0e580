/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  The launcher: one sync worker per database listed in flusso.database.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_LAUNCHER_H
#define FLUSSO_LAUNCHER_H

#include "fmgr.h"

/* Register the launcher (from _PG_init, in the postmaster). */
extern void flusso_register_launcher(void);

/* Its main function, by name from the background worker entry. */
extern PGDLLEXPORT void flusso_launcher_main(Datum main_arg);

#endif							/* FLUSSO_LAUNCHER_H */
