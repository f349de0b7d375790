/*
 * bigread — read from a socket into an evbuffer in one large readv.
 *
 * libevent 2.1's evbuffer_read (and so every bufferevent) reads at most
 * 4 KiB per call whatever is waiting; a 1 MiB response then costs 256 reads
 * and as many trips through the loop.  This reserves up to max bytes of the
 * buffer's own space and reads straight into it: no copy, one system call.
 */
#ifndef EGRESSD_GATEWAY_BIGREAD_H
#define EGRESSD_GATEWAY_BIGREAD_H

#include <stddef.h>
#include <sys/types.h>

struct evbuffer;

/* Like recv: > 0 bytes added, 0 at EOF, -1 with errno (EAGAIN: nothing yet). */
ssize_t bigread(struct evbuffer *buf, int fd, size_t max);

#endif
