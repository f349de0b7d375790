/*
 * conn — one client connection, from accept to close.  See conn.c.
 */
#ifndef EGRESSD_GATEWAY_CONN_H
#define EGRESSD_GATEWAY_CONN_H

#include <stdbool.h>
#include <sys/socket.h>

struct worker;
struct conn;

/*
 * Take over the accepted socket fd.  proxy_protocol: a PROXY header comes
 * first.  tls: then a TLS handshake (gateway/tls.c's pair).  over_capacity: the gateway is past max_connections; the request is
 * read and answered 503.
 */
void conn_new(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen,
    bool proxy_protocol, bool tls, bool over_capacity);

/*
 * The worker is draining.  now=false: close the connection if it is idle (no
 * request or tunnel under way), else let it finish.  now=true: the grace time
 * is over, close it whatever it is doing (close reason "shutdown").
 */
void conn_shutdown(struct conn *c, bool now);

#endif
