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

#include <stdint.h>

#include <openssl/ssl.h>

struct config;
struct tls;

/* Load tls_cert_file and tls_key_file of conf.  NULL with *err (malloc'd,
 * "tls_key_file PATH: why") on failure. */
struct tls *tls_new(const struct config *conf, char **err);
void tls_free(struct tls *);

/* Re-read the pair; on failure (-1, *err as above) the old one stays. */
int tls_reload(struct tls *, char **err);

/* A new server-side SSL on the pair in force (any thread), NULL on failure. */
SSL *tls_ssl_new(struct tls *);

/* notAfter of the leaf certificate in force, seconds since the epoch. */
int64_t tls_cert_expiry(struct tls *);

/* The last OpenSSL error queued on this thread as text (cleared), for logs. */
const char *tls_last_error(void);

#endif
