/*
 * bigread — see bigread.h.
 */
#include "gateway/bigread.h"

#include <errno.h>
#include <sys/uio.h>

#include <event2/buffer.h>

#define BIGREAD_IOVECS 2            /* the tail of the last chain and one new one */

ssize_t
bigread(struct evbuffer *buf, int fd, size_t max)
{
	struct evbuffer_iovec vec[BIGREAD_IOVECS];
	struct iovec iov[BIGREAD_IOVECS];
	size_t left;
	ssize_t n;
	int nvec, i;

	if (max == 0) {
		errno = EAGAIN;
		return -1;
	}
	nvec = evbuffer_reserve_space(buf, (ev_ssize_t)max, vec, BIGREAD_IOVECS);
	if (nvec < 0) {
		errno = ENOMEM;
		return -1;
	}
	/* The space reserved may exceed max (whole chains): read max at most. */
	left = max;
	for (i = 0; i < nvec; i++) {
		iov[i].iov_base = vec[i].iov_base;
		iov[i].iov_len = vec[i].iov_len < left ? vec[i].iov_len : left;
		left -= iov[i].iov_len;
	}
	do
		n = readv(fd, iov, nvec);
	while (n == -1 && errno == EINTR);
	if (n <= 0) {
		(void)evbuffer_commit_space(buf, vec, 0);
		return n;
	}
	/* Commit exactly what arrived: the vectors it filled, the last one cut. */
	left = (size_t)n;
	for (i = 0; i < nvec && left > 0; i++) {
		if (vec[i].iov_len > left)
			vec[i].iov_len = left;
		left -= vec[i].iov_len;
	}
	if (evbuffer_commit_space(buf, vec, i) == -1) {
		errno = ENOMEM;
		return -1;
	}
	return n;
}
