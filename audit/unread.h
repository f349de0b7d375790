/*
 * unread — which audit datagrams the syslog daemon has certainly read.
 *
 * A unix datagram sent to rsyslogd is charged to the sender's socket until
 * the reader takes it (SIOCOUTQ = the truesize of our datagrams still in the
 * reader's queue).  When the reader exits, the kernel frees what it had not
 * read and nobody is told.  This tracker keeps the datagrams sent since the
 * last proof that the reader had taken them, so that when the reader goes
 * away they are counted as possibly lost instead of silently gone.
 *
 * A proof is a sample: SIOCOUTQ gives the bytes still unread, hence (the
 * reader takes datagrams in order) how many of the oldest were read.  A
 * sample only counts if the reader was still alive after it was taken (the
 * kernel frees a dead reader's queue, which reads as "all read"): either
 * sock_diag finds the peer socket after the ioctl (it is removed from the
 * socket table before its queue is freed), or, without sock_diag, a later
 * send on the same connection succeeded.  The count is therefore never too
 * small; it is too large only by what the reader took since the last sample.
 *
 * Not thread-safe: the caller serializes (syslog.c holds its lock).
 */
#ifndef EGRESSD_AUDIT_UNREAD_H
#define EGRESSD_AUDIT_UNREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct unread;

/* NULL when out of memory or without AF_UNIX datagram sockets. */
struct unread *unread_new(void);
void unread_free(struct unread *);

/* fd is a newly connected datagram socket: forget the previous connection. */
void unread_connected(struct unread *, int fd);

/* A datagram of len bytes was accepted by fd. */
void unread_sent(struct unread *, size_t len);

/* Take a sample on fd (cheap; called by the delivery thread while
 * unread_pending() > 0). */
void unread_sample(struct unread *, int fd);

/* Datagrams sent and not yet proven read. */
size_t unread_pending(const struct unread *);

/* The reader went away: the pending datagrams are possibly lost; returns
 * their count and forgets them. */
uint64_t unread_gone(struct unread *);

/* The kernel's truesize of one datagram of len bytes (for tests); 0 if unknown. */
uint32_t unread_truesize(struct unread *, size_t len);

/* Whether the peer check uses sock_diag (for tests and the log). */
bool unread_has_diag(const struct unread *);

#endif
