/*-------------------------------------------------------------------------
 *
 * engine.h
 *	  The sync pipeline of one database, driven by the worker's loop.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLUSSO_ENGINE_H
#define FLUSSO_ENGINE_H

/* Once per process, before the loop. */
extern void flusso_engine_init(void);

/* The extension appeared in the database: load definitions, start syncing. */
extern void flusso_engine_start(void);

/* The extension was dropped: forget everything, release the slot. */
extern void flusso_engine_stop(void);

/* Settings were reloaded. */
extern void flusso_engine_settings_changed(bool connection_changed);

/* One unit of work; returns how long the worker may sleep, in ms. */
extern long flusso_engine_step(void);

/* A step raised an error: drop in-flight state so the next step replays. */
extern void flusso_engine_after_error(void);

#endif							/* FLUSSO_ENGINE_H */
