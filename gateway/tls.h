/*
 * tls — the certificate and key of the `tls` listeners, as an OpenSSL context.
 *
 * One struct tls per daemon holds the context new connections are given.  A
 * reload reads the pair into a fresh context and swaps it in only when the
 * whole of it loaded (build, then swap): a broken pair leaves the old one in
 * force.  Each connection's SSL holds its own reference to the context it was
 * made from (OpenSSL counts them), so open connections keep their pair after
 * a swap and the old context goes when the last of them closes.
 *
 * Settings: TLS 1.2 or 1.3 at least (tls_min_version), Mozilla's
 * "intermediate" cipher list, ALPN answered http/1.1 (other offers get no
 * ALPN answer rather than an alert), session tickets on, client-initiated
 * renegotiation and compression off.
 */
#ifndef EGRESSD_GATEWAY_TLS_H
#define EGRESSD_GATEWAY_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct bufferevent;
struct config;
struct event_base;
struct tls;

/* Load tls_cert_file and tls_key_file of conf.  NULL with *err (malloc'd,
 * "tls_key_file PATH: why") on failure. */
struct tls *tls_new(const struct config *conf, char **err);
void tls_free(struct tls *);

/* Re-read the pair; on failure (-1, *err as above) the old one stays. */
int tls_reload(struct tls *, char **err);

/* A new server-side SSL on the pair in force (any thread), NULL on failure. */
SSL *tls_ssl_new(struct tls *);

/*
 * The server side of a client connection, on the pair in force, handshake
 * pending (it runs inside the bufferevent; BEV_EVENT_CONNECTED reports it
 * done).  tls_bev_socket: on the accepted socket fd, which the bufferevent
 * owns (and closes) on success.  tls_bev_filter: on top of `under` (after a
 * PROXY header read in clear from it): the bufferevent owns `under` on
 * success, and starts on what `under` has already buffered.  NULL on failure
 * (fd or under untouched).
 */
struct bufferevent *tls_bev_socket(struct tls *, struct event_base *, int fd);
struct bufferevent *tls_bev_filter(struct tls *, struct event_base *,
    struct bufferevent *under);
/*
 * Call on the EOF event of a TLS bufferevent (the peer's close_notify):
 * libevent 2.1 then stops the socket's write event even while output waits,
 * and adding more output does not start it again; a half-closed peer still
 * reads, so this starts it again when there is something to write.
 */
void tls_bev_keep_writing(struct bufferevent *);
/* Send close_notify on a TLS bufferevent whose handshake is done. */
void tls_bev_close_notify(struct bufferevent *);
/* Bytes written to a TLS bufferevent not yet on the socket: its output and,
 * for a filter, the encrypted bytes still in the one below. */
size_t tls_bev_unsent(struct bufferevent *);
/* Why a TLS bufferevent failed (the OpenSSL errors it saw, drained), or NULL. */
const char *tls_bev_error(struct bufferevent *, char *buf, size_t len);

/* notAfter of the leaf certificate in force, seconds since the epoch. */
int64_t tls_cert_expiry(struct tls *);

/* The last OpenSSL error queued on this thread as text (cleared), for logs. */
const char *tls_last_error(void);

#endif
