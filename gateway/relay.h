/*
 * relay — the tunnel's byte pump: two symmetric halves between two sockets.
 *
 * Each half reads from one socket and writes to the other.  A read goes into
 * a per-thread scratch buffer and straight out to the peer; only what the peer
 * cannot take now is kept, in a buffer allocated for that moment and freed once
 * written, so an idle tunnel holds no buffer at all and a slow reader stops
 * the opposite read (backpressure) instead of growing memory.  EOF on one side
 * is passed on as shutdown(SHUT_WR) once everything before it is written.
 * This is the one place bytes of a tunnel move, so zero-copy (splice) can
 * replace the scratch buffer later without touching anything else.
 */
#ifndef EGRESSD_GATEWAY_RELAY_H
#define EGRESSD_GATEWAY_RELAY_H

#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct event_base;
struct relay;

enum relay_end {
	RELAY_END_CLIENT,               /* the client closed first (or reset) */
	RELAY_END_SERVER,               /* the destination closed first (or reset) */
};

/* Called once when both directions are finished or one failed; the relay is
 * stopped (no more callbacks) but not freed. */
typedef void relay_done_cb(enum relay_end who, void *arg);

/*
 * Start relaying between client_fd and server_fd (not owned: the caller
 * closes them after relay_free).  up/up_len: bytes already read from the client
 * to send to the server first (counted in bytes_up); down/down_len: bytes to send
 * the client first that are not payload (e.g. the end of an earlier response;
 * not counted).  *last_activity_ms is set to clock_mono_coarse_ms() on every
 * move (monotonic: a wall-clock step moves no idle deadline).
 */
struct relay *relay_new(struct event_base *base, int client_fd, int server_fd,
    const void *up, size_t up_len, const void *down, size_t down_len,
    relay_done_cb *cb, void *arg, int64_t *last_activity_ms);
/*
 * The same with the client side behind a bufferevent (a TLS client: its bytes
 * must go through OpenSSL, so they cannot move socket to socket).  The relay
 * borrows `client` until relay_free (its callbacks and watermarks are the
 * relay's meanwhile, and it is left disabled for reading afterwards); what is
 * in its input goes to the server first (counted in bytes_up), what is in its
 * output goes on to the client (not counted).
 */
struct relay *relay_new_bev(struct event_base *base, struct bufferevent *client,
    int server_fd, relay_done_cb *cb, void *arg, int64_t *last_activity_ms);
void relay_free(struct relay *);
/* Count payload moved before the relay started (e.g. during the SNI check's
 * exchange with the destination) in its counters, so they cover the tunnel. */
void relay_add_bytes(struct relay *, uint64_t up, uint64_t down);
/* Payload bytes so far; safe from any thread while the relay exists
 * (relaxed atomic loads: the admin socket reads open tunnels' counters). */
uint64_t relay_bytes_up(const struct relay *);
uint64_t relay_bytes_down(const struct relay *);

#endif
