/*
 * relp — one RELP client session to rsyslog's imrelp, through librelp.
 *
 * A thin shell for syslog.c's delivery thread (the only caller; nothing here
 * is thread-safe): connect, send one frame, drop a broken session.  librelp
 * blocks (bounded by the timeouts below) and keeps its own list of frames
 * the receiver has not acknowledged yet, but it tells its caller nothing
 * per frame.  What it does guarantee is its window: a send returns only
 * once fewer than RELP_WINDOW frames are unacknowledged, so after a
 * successful send every frame but the newest RELP_WINDOW has been
 * acknowledged.  syslog.c keeps those newest ones queued and, after a
 * reconnect, sends them again itself (a fresh session each time: librelp's
 * own resend is never used, so each frame is resent exactly once per
 * reconnect and the count of possible duplicates is exact).
 */
#ifndef EGRESSD_AUDIT_RELP_H
#define EGRESSD_AUDIT_RELP_H

#include <stddef.h>

/* Frames in flight: at least 2 (librelp ignores smaller windows). */
#define RELP_WINDOW             4
/* Seconds librelp may wait for a connection, and for an acknowledgement. */
#define RELP_CONNECT_TIMEOUT    2
#define RELP_ACK_TIMEOUT        5

struct relp_link;

/* A link to host:port, not connected yet; NULL when out of memory. */
struct relp_link *relp_link_new(const char *host, int port);
void relp_link_free(struct relp_link *);

/* Open a session.  0, or -1 with a reason in err. */
int relp_link_connect(struct relp_link *, char *err, size_t errlen);

/* Send one syslog frame (blocks while the window is full).  0, or -1 with a
 * reason in err: the session is broken, relp_link_drop() it. */
int relp_link_send(struct relp_link *, const char *msg, size_t len, char *err, size_t errlen);

/* Close the session (politely if it still works); the link may connect again. */
void relp_link_drop(struct relp_link *);

#endif
