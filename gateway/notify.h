/*
 * notify — telling systemd what the daemon is doing (sd_notify(3)).
 *
 * With a unit of Type=notify, systemd passes NOTIFY_SOCKET (and, with
 * WatchdogSec=, WATCHDOG_USEC) in the environment.  notify_new() returns
 * NULL when NOTIFY_SOCKET is unset, and every call takes NULL and then does
 * nothing: run by hand or by the tests, egressd sends nothing anywhere.
 *
 *   READY=1                      once every listener accepts (notify_ready)
 *   RELOADING=1 MONOTONIC_USEC=  when a reload starts, READY=1 when it ends,
 *                                accepted or refused (the old policy serves)
 *   STOPPING=1                   on SIGTERM, before draining
 *   STATUS=...                   one line: rules in force and what is open,
 *                                with READY and refreshed every few seconds
 *   WATCHDOG=1                   every WATCHDOG_USEC/2 from the main loop
 *
 * Everything runs on the main thread's loop.
 */
#ifndef EGRESSD_GATEWAY_NOTIFY_H
#define EGRESSD_GATEWAY_NOTIFY_H

#include <stddef.h>

struct event_base;
struct notify;

/* Writes the one-line status (without "STATUS=") into buf. */
typedef void notify_status_fn(void *arg, char *buf, size_t len);

struct notify *notify_new(struct event_base *, notify_status_fn *, void *arg);
void notify_free(struct notify *);

void notify_ready(struct notify *);
void notify_reloading(struct notify *);
void notify_reloaded(struct notify *);
void notify_stopping(struct notify *);

#endif
