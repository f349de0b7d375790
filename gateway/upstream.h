/*
 * upstream — find and reach the destination: resolve, filter, connect.
 *
 * upstream_resolve() turns a normalized host into the list of addresses the
 * gateway may connect to: IP literals directly, names through the loop's
 * evdns base (hosts file first, resolv.conf nameservers, never the search
 * list).  Every address is checked against the internal ranges and the
 * allow_internal exceptions, and the gateway's own listening addresses are
 * always refused, so a name that points inside gets 403, not a connection.
 * upstream_connect() then tries the surviving addresses in order, non-
 * blocking, within one total connect_timeout, and connects to exactly the
 * sockaddr that was checked.  Both report through one callback, always from the
 * event loop (never from inside the call), and can be cancelled.
 */
#ifndef EGRESSD_GATEWAY_UPSTREAM_H
#define EGRESSD_GATEWAY_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "policy/policy.h"

struct cidr;
struct event_base;
struct evdns_base;
struct upstream_req;
struct upstream_addrs;              /* the checked address list, owned by the caller */

struct upstream_result {
	int status;                     /* 0 success, else the HTTP status to answer (403, 502, 504) */
	const char *reason;             /* audit reason on failure ("dns_failure", ...) */
	int fd;                         /* connect: the connected socket, now owned by the caller */
	struct upstream_addrs *addrs;   /* resolve: the addresses, now owned by the caller */
	char dst_ip[46];                /* connect: the address connected to; resolve failure: the one refused */
};

typedef void upstream_cb(const struct upstream_result *, void *arg);

/*
 * What upstream needs of the loop it runs on, filled in by that loop's owner
 * and outliving every request made with it.  upstream knows nothing else of
 * the daemon: the "is this one of our own listeners" question is asked through
 * is_own_address, so the rule lives with the listeners.
 */
struct upstream_ctx {
	struct event_base *base;
	struct evdns_base *dns;
	const struct cidr *allow_internal;  /* allow_internal exceptions */
	size_t nallow_internal;
	bool (*is_own_address)(const struct sockaddr *, void *arg);
	void *own_arg;
};

struct upstream_req *upstream_resolve(const struct upstream_ctx *, const char *host, enum host_kind kind,
    uint16_t port, upstream_cb *cb, void *arg);
struct upstream_req *upstream_connect(const struct upstream_ctx *, struct upstream_addrs *addrs,
    int timeout_s, upstream_cb *cb, void *arg);
void upstream_cancel(struct upstream_req *);
void upstream_addrs_free(struct upstream_addrs *);

#endif
