/*-------------------------------------------------------------------------
 *
 * engine.c
 *	  The sync pipeline of one database: capture, resolve, build, ship, ack.
 *
 * At this stage the engine only reports the worker live: the pipeline
 * stages plug in here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "engine.h"
#include "settings.h"
#include "status.h"

void
flusso_engine_init(void)
{
}

void
flusso_engine_start(void)
{
}

void
flusso_engine_stop(void)
{
}

void
flusso_engine_settings_changed(void)
{
}

long
flusso_engine_step(void)
{
	flusso_observer->on_phase(FLUSSO_PHASE_LIVE);
	flusso_observer->on_activity("idle");
	return flusso_lag_poll_interval;
}

void
flusso_engine_after_error(void)
{
}
