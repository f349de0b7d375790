/* Client plumbing shared by the bench clients (loadgen.c, auth_bench.c, sni_bench.c).
 *
 * The epoll engine: one thread, non-blocking sockets to 127.0.0.1:lg_proxy_port, each
 * connection sends a CONNECT request, reads the response head (must be a 200 with
 * nothing after it, except in bulk mode) and then, by lg_after:
 *   LG_ECHO_CLOSE  send 16 bytes, read them back from the echo, close (ok);
 *   LG_ECHO_HOLD   the same round trip, then hold the tunnel open (counted ok while held);
 *   LG_BULK        read everything the origin sends (bytes counted while lg_counting).
 * Every loop is bounded in time.
 */
#ifndef EGRESSD_BENCH_LOADLIB_H
#define EGRESSD_BENCH_LOADLIB_H

#include <signal.h>
#include <stddef.h>

#define LG_REQMAX 2048

enum lg_after { LG_ECHO_CLOSE, LG_ECHO_HOLD, LG_BULK };

/* Set by the client before lg_start(). */
extern int lg_proxy_port;
extern enum lg_after lg_after;
/* Writes the CONNECT request of connection number IDX into REQ (LG_REQMAX bytes). */
extern size_t (*lg_build_req)(char *req, long idx);
extern const char *lg_fail_tag;   /* non-NULL: print the first refused head, "TAG: first failure: ..." */
extern double *lg_lat;            /* non-NULL: record each ok tunnel's seconds (connect to done) */
extern long lg_nlat;
extern long lg_next_index, lg_last_index;   /* indices still to start; last -1: unlimited */
extern int lg_restart;            /* start the next index as each connection ends */
extern int lg_counting;           /* bulk: bytes are counted only in the measured window */
extern int lg_direct;             /* no CONNECT: the tunnel's bytes start at once */
/* The first tunnel bytes (e.g. a TLS ClientHello, so that sni=require passes); NULL: 16
 * fixed bytes for the echo modes and nothing for bulk. At most LG_PAYLOADMAX bytes. */
#define LG_PAYLOADMAX 65536
extern const unsigned char *lg_payload;
extern size_t lg_payload_len;

/* Results. */
extern long lg_ok, lg_err, lg_live;
extern unsigned long long lg_bulk_bytes;
extern volatile sig_atomic_t lg_stop;   /* set by SIGTERM/SIGINT */

/* Monotonic seconds. */
double lg_now(void);
/* SIGPIPE ignored, SIGTERM/SIGINT set lg_stop, the epoll set created. */
void lg_init(void);
/* Start one connection with index IDX; -1 when it could not even start. */
int lg_start(long idx);
/* Start the next index (lg_next_index++), counting an error when it cannot start. */
void lg_start_next(void);
/* Whether an index is still to start (lg_last_index -1: always). */
int lg_more(void);
/* Run the event loop until DEADLINE, SIGTERM/SIGINT, DONE() (when given) or 100,000 errors. */
void lg_run_until(double deadline, int (*done)(void));
/* The tunnels workload: CONC connections at a time, each started again as one ends,
 * for SECS; prints "ok=N err=E secs=S rate=TUNNELS_PER_SECOND". */
void lg_tunnels(long conc, double secs);
/* Sort lg_lat and print " mean_ms=M p50_ms=P p95_ms=Q max_ms=X" (no newline). */
void lg_print_latency(void);
/* "CONNECT HOST:PORT HTTP/1.1\r\nHost: HOST:PORT\r\n" + EXTRA + "\r\n" into REQ of CAP
 * bytes; the length, or CAP or more when it did not fit. */
size_t lg_connect_req(char *req, size_t cap, const char *host, const char *port, const char *extra);
/* Whether HEAD (NUL-terminated, LEN bytes) is an HTTP/1.x 200 response head. */
int lg_head_is_200(const char *head, size_t len);

#endif
