/*
 * metrics — `metrics_listen`: GET /metrics in the Prometheus text exposition
 * format 0.0.4, and GET /healthz for load balancers, served on the main
 * thread's loop.  Anything else is answered 404.  /healthz is 200 "ok" while
 * the gateway accepts and can serve, 503 with a one-line reason otherwise;
 * a health check writes no audit record and no log line.  The numbers are the admin socket's
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

/* NULL when the gateway can serve, else why not (one line, no newline). */
typedef const char *metrics_health_fn(void *arg);

/* Listen on addr; NULL with *err (malloc'd) if the socket cannot be bound.
 * report and health are called with arg. */
struct metrics *metrics_new(struct event_base *, const struct sockaddr *addr, socklen_t len,
    metrics_report_fn *report, metrics_health_fn *health, void *arg, char **err);
void metrics_free(struct metrics *);

/* The exposition text for one report (malloc'd; NULL if out of memory). */
char *metrics_render(const struct control_report *);

#endif
