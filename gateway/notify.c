/*
 * notify — see notify.h.  libsystemd's sd_notify() does the protocol (an
 * AF_UNIX datagram to NOTIFY_SOCKET, abstract names included); this file
 * decides when.  The difficulty is only to stay quiet: no NOTIFY_SOCKET, no
 * message, no timer.  The watchdog is fed from the main loop, so a main
 * thread stuck on something (it also serves the admin socket and /metrics)
 * gets the service restarted by systemd, as WatchdogSec= intends.
 */
#include "gateway/notify.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "gateway/log.h"
#include "lib/clock.h"

#define NOTIFY_STATUS_MS 5000           /* STATUS= refreshed this often (when changed) */
#define NOTIFY_STATUS_MAX 256

struct notify {
	notify_status_fn *status_fn;
	void *arg;
	struct event *status_ev;
	struct event *watchdog_ev;
	char last_status[NOTIFY_STATUS_MAX];
	bool ready;
	bool stopping;                  /* after STOPPING=1 only the watchdog speaks */
	bool failed_logged;
};

/* One datagram; a failure is logged once (systemd gone is not fatal). */
static void
notify_send(struct notify *n, const char *msg)
{
	int rc = sd_notify(0, msg);

	if (rc < 0 && !n->failed_logged) {
		log_warnx("event=sd-notify-failed error=\"%s\" (further failures not logged)",
		    strerror(-rc));
		n->failed_logged = true;
	}
}

/* The current status line, as "STATUS=..." into msg; false if unchanged. */
static bool
notify_status_text(struct notify *n, char *msg, size_t len)
{
	char st[NOTIFY_STATUS_MAX];

	st[0] = '\0';
	n->status_fn(n->arg, st, sizeof(st));
	/* One line: a newline would start another assignment. */
	st[strcspn(st, "\n")] = '\0';
	if (strcmp(st, n->last_status) == 0)
		return false;
	memcpy(n->last_status, st, sizeof(st));
	snprintf(msg, len, "STATUS=%s", st);
	return true;
}

static void
on_status_timer(evutil_socket_t fd, short what, void *arg)
{
	struct notify *n = arg;
	char msg[NOTIFY_STATUS_MAX + 8];

	if (notify_status_text(n, msg, sizeof(msg)))
		notify_send(n, msg);
}

static void
on_watchdog_timer(evutil_socket_t fd, short what, void *arg)
{
	notify_send(arg, "WATCHDOG=1");
}

struct notify *
notify_new(struct event_base *base, notify_status_fn *fn, void *arg)
{
	struct notify *n;
	struct timeval tv;
	uint64_t usec = 0;
	const char *e = getenv("NOTIFY_SOCKET");

	if (e == NULL || e[0] == '\0')
		return NULL;
	if ((n = calloc(1, sizeof(*n))) == NULL)
		fatal("calloc");
	n->status_fn = fn;
	n->arg = arg;
	n->status_ev = event_new(base, -1, EV_PERSIST, on_status_timer, n);
	if (n->status_ev == NULL)
		fatalx("cannot create the sd_notify status timer");
	tv.tv_sec = NOTIFY_STATUS_MS / 1000;
	tv.tv_usec = (NOTIFY_STATUS_MS % 1000) * 1000;
	event_add(n->status_ev, &tv);
	/* > 0 only when WATCHDOG_USEC is set (and WATCHDOG_PID, if set, is us). */
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		n->watchdog_ev = event_new(base, -1, EV_PERSIST, on_watchdog_timer, n);
		if (n->watchdog_ev == NULL)
			fatalx("cannot create the sd_notify watchdog timer");
		usec /= 2;
		tv.tv_sec = (time_t)(usec / 1000000);
		tv.tv_usec = (suseconds_t)(usec % 1000000);
		event_add(n->watchdog_ev, &tv);
		log_info("event=watchdog interval_ms=%" PRIu64, usec / 1000);
	}
	return n;
}

void
notify_free(struct notify *n)
{
	if (n == NULL)
		return;
	if (n->status_ev != NULL)
		event_free(n->status_ev);
	if (n->watchdog_ev != NULL)
		event_free(n->watchdog_ev);
	free(n);
}

/* READY=1 with the status in the same datagram, so systemd shows both at once. */
static void
notify_ready_status(struct notify *n)
{
	char msg[NOTIFY_STATUS_MAX + 32];

	n->last_status[0] = '\0';
	if (notify_status_text(n, msg + 8, sizeof(msg) - 8)) {
		memcpy(msg, "READY=1\n", 8);
		notify_send(n, msg);
	} else
		notify_send(n, "READY=1");
}

void
notify_ready(struct notify *n)
{
	if (n == NULL)
		return;
	n->ready = true;
	notify_ready_status(n);
}

void
notify_reloading(struct notify *n)
{
	char msg[64];

	if (n == NULL || n->stopping)
		return;
	/* systemd >= 253 (Type=notify-reload) wants the timestamp with it. */
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRId64, clock_mono_us());
	notify_send(n, msg);
}

void
notify_reloaded(struct notify *n)
{
	if (n == NULL || n->stopping)
		return;
	notify_ready_status(n);
}

void
notify_stopping(struct notify *n)
{
	if (n == NULL)
		return;
	n->stopping = true;
	event_del(n->status_ev);
	notify_send(n, "STOPPING=1\nSTATUS=stopping: draining open tunnels and requests");
}
