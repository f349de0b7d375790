/*
 * stats — what the gateway is doing, for the admin socket and /metrics.
 *
 * Each worker owns one struct stats and is the only thread that writes it;
 * the main thread reads every worker's and sums them on demand (stats_sum).
 * Counters are C11 atomics written with relaxed single-writer stores, so the
 * hot path pays no lock and no locked instruction, and a reader on another
 * thread never sees a torn value.  The registry of open tunnels is the one
 * part behind a mutex, taken when a tunnel starts or ends and when the list
 * is asked for, never per byte: the bytes of an open tunnel are read live
 * from its relay's counters at listing time.
 */
#ifndef EGRESSD_GATEWAY_STATS_H
#define EGRESSD_GATEWAY_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/netaddr.h"
#include "policy/policy.h"

struct relay;
struct stats;                       /* one per worker */
struct stats_tunnel_entry;          /* an open tunnel in its worker's registry */

/* Every audit reason of the contract, plus ok and "other" (never expected). */
#define STATS_REASONS(X) \
	X(ok) X(policy) X(default_deny) X(auth_required) X(auth_failed) \
	X(auth_unavailable) X(internal_destination) X(sni_missing) X(sni_mismatch) \
	X(sni_denied) X(sni_invalid) X(not_tls) X(policy_error) X(dns_failure) \
	X(connect_failed) X(connect_timeout) X(bad_request) X(over_capacity) \
	X(audit_unavailable) X(insecure_credentials) X(auth_throttled) X(other)

#define STATS_REASON_ENUM(name) STATS_REASON_##name,
enum stats_reason { STATS_REASONS(STATS_REASON_ENUM) STATS_NREASONS };
#undef STATS_REASON_ENUM

extern const char *const stats_reason_names[STATS_NREASONS];

/*
 * Histogram bucket upper bounds in microseconds (the +Inf bucket is implied).
 * One set serves both histograms: tunnel setup and LDAP times both span from
 * a millisecond on loopback to the seconds of a timeout.
 */
#define STATS_HIST_BOUNDS_US { 1000, 2500, 5000, 10000, 25000, 50000, 100000, \
	250000, 500000, 1000000, 2500000, 5000000, 10000000 }
#define STATS_HIST_NBOUNDS 13

/* A histogram read out: buckets[i] counts observations <= bound i (not
 * cumulative); buckets[STATS_HIST_NBOUNDS] the rest. */
struct stats_hist {
	uint64_t buckets[STATS_HIST_NBOUNDS + 1];
	uint64_t sum_us;                /* sum of the observations */
};

/* The gateway counters summed over every worker. */
struct stats_totals {
	uint64_t conns_accepted;        /* client connections accepted */
	uint64_t conns_open;            /* client connections open now */
	uint64_t proxy_refused;         /* closed at accept: PROXY from outside proxy_protocol_from */
	uint64_t tunnels_open;          /* tunnels relaying now */
	uint64_t tunnels_total;         /* tunnels that started relaying */
	uint64_t records_tunnel;        /* CONNECT records (tunnels ended, allowed or not) */
	uint64_t records_request;       /* absolute-form request records */
	uint64_t bytes_up;              /* client -> destination: ended records + open tunnels */
	uint64_t bytes_down;            /* destination -> client, likewise */
	uint64_t decisions[STATS_NREASONS]; /* records by audit reason (clients that left excluded) */
	uint64_t client_aborted;        /* records of clients that left mid-head: not denials */
	struct stats_hist setup;        /* accept/first byte -> 200 queued, tunnels */
	struct stats_hist ldap;         /* auth_begin -> answer, directory exchanges only */
};

/* One open tunnel, as listed. */
struct stats_tunnel {
	char id[40];                    /* the audit record id it will end with */
	char user[256];                 /* "" = anonymous */
	char client_ip[NETADDR_TEXT_MAX];
	int client_port;
	char host[HOST_BUF];
	uint16_t port;
	char dst_ip[NETADDR_TEXT_MAX];
	char sni[HOST_BUF];             /* "" = none read */
	int64_t start_ms;               /* wall clock, ms since the epoch: request's first byte */
	uint64_t bytes_up;              /* filled when listed */
	uint64_t bytes_down;
};

struct stats *stats_new(void);
void stats_free(struct stats *);

/* ---- the owning worker's thread only -------------------------------- */
void stats_conn_open(struct stats *);
void stats_conn_close(struct stats *);
void stats_proxy_refused(struct stats *);
/* A record was emitted; bytes are added unless the tunnel was registered
 * (stats_tunnel_remove adds those).  client_left: the client went away before
 * its head was complete: counted apart, not as a decision (nobody denied it). */
void stats_record(struct stats *, bool tunnel, const char *reason, uint64_t up,
    uint64_t down, bool registered, bool client_left);
void stats_setup_time(struct stats *, int64_t us);
void stats_ldap_time(struct stats *, int64_t us);

/* Register a tunnel that starts relaying (info copied; bytes ignored).
 * relay must stay valid until stats_tunnel_remove.  NULL if out of memory. */
struct stats_tunnel_entry *stats_tunnel_add(struct stats *, const struct stats_tunnel *info,
    const struct relay *relay);
/* Unregister it (before its relay is freed) and count its final bytes. */
void stats_tunnel_remove(struct stats *, struct stats_tunnel_entry *, uint64_t up,
    uint64_t down);

/* ---- any thread ------------------------------------------------------ */
/* Add this worker's counters (and its open tunnels' live bytes) to *t. */
void stats_sum(struct stats *, struct stats_totals *t);
/* Append copies of the open tunnels to *list (realloc'd; *n entries). -1: no memory. */
int stats_tunnels(struct stats *, struct stats_tunnel **list, size_t *n);

enum stats_reason stats_reason_index(const char *reason);

#endif
