/*
 * metrics — `metrics_listen`: GET /metrics in the Prometheus text exposition
 * format 0.0.4, served by libevent's evhttp on the main thread's loop.
 * Anything else is answered 404.  The numbers are the admin socket's
 * (struct control_report), gathered afresh for every scrape.
 */
#ifndef EGRESSD_GATEWAY_METRICS_H
#define EGRESSD_GATEWAY_METRICS_H

#include <sys/socket.h>

struct event_base;
struct control_report;
struct metrics;

/* Gather the numbers of one scrape (main thread). */
typedef void metrics_report_fn(void *arg, struct control_report *);

/* Listen on addr; NULL with *err (malloc'd) if the socket cannot be bound. */
struct metrics *metrics_new(struct event_base *, const struct sockaddr *addr, socklen_t len,
    metrics_report_fn *report, void *arg, char **err);
void metrics_free(struct metrics *);

/* The exposition text for one report (malloc'd; NULL if out of memory). */
char *metrics_render(const struct control_report *);

#endif
