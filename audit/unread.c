/*
 * unread — which audit datagrams the syslog daemon has certainly read (see
 * unread.h for why).
 *
 * The pending datagrams form a ring in send order; each entry gets, at the
 * first sample after it was sent, the cumulative kernel truesize of the
 * connection up to and including it.  A sample with outq bytes unread proves
 * that every entry whose cumulative size is at most total - outq was read
 * (the reader takes datagrams in order, and only ours are charged to our
 * socket).  The truesize of a length is measured once on a private
 * socketpair: the same kernel path (unix_dgram_sendmsg) charges the same
 * amount, so the arithmetic is exact, not estimated.  If a measurement
 * fails, nothing is ever proven read: everything pending counts as possibly
 * lost, which is safe.
 */
#include "audit/unread.h"

#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Datagrams pending at most: far above what a reader's queue can hold
 * (net.unix.max_dgram_qlen, the sender's SO_SNDBUF); beyond it the oldest are
 * counted possibly lost rather than assumed read. */
#define UNREAD_MAX              65536
#define UNREAD_CACHE_LEN        8192    /* truesizes cached for lengths below this */

struct unread_ent {
	uint32_t len;
	uint64_t cum;                   /* cumulative truesize; 0 = not yet computed */
};

struct unread {
	struct unread_ent *ring;
	size_t cap, first, count, computed;     /* computed: entries from first with cum set */
	uint64_t total;                 /* truesize of every datagram computed so far */
	uint64_t overflow;              /* forced out of a full ring: possibly lost */
	bool calib_failed;

	int pair[2];                    /* the truesize measurement socketpair */
	uint32_t *truesize;             /* cache by length, 0 = not measured */

	int nl;                         /* NETLINK_SOCK_DIAG, or -1 */
	uint32_t peer_ino;              /* the reader's socket, 0 = unknown */
	uint32_t peer_cookie[2];

	/* without sock_diag: a sample waiting for a later successful send */
	bool cand;
	uint64_t cand_read;             /* bytes proven read by it */
	uint64_t cand_sends, sends;
};

static char zeros[UNREAD_CACHE_LEN];

/*
 * One sock_diag lookup of the unix socket ino (with cookie unless NULL).
 * Returns 1 found (its cookie and, if asked, its peer's inode filled in),
 * 0 no such socket, -1 error.
 */
static int
diag_lookup(int nl, uint32_t ino, const uint32_t *cookie, uint32_t out_cookie[2],
    uint32_t *out_peer)
{
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req r;
	} req;
	union {
		struct nlmsghdr nlh;
		char buf[1024];
	} rsp;
	struct unix_diag_msg *m;
	struct nlmsgerr *e;
	struct nlattr *at;
	ssize_t n;
	size_t off;

	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = sizeof(req);
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST;
	req.r.sdiag_family = AF_UNIX;
	req.r.udiag_states = ~0u;
	req.r.udiag_ino = ino;
	req.r.udiag_show = UDIAG_SHOW_PEER;
	req.r.udiag_cookie[0] = cookie != NULL ? cookie[0] : ~0u;
	req.r.udiag_cookie[1] = cookie != NULL ? cookie[1] : ~0u;
	if (send(nl, &req, sizeof(req), 0) != (ssize_t)sizeof(req))
		return -1;
	n = recv(nl, &rsp, sizeof(rsp), 0);
	if (n < (ssize_t)sizeof(struct nlmsghdr) || rsp.nlh.nlmsg_len > (size_t)n)
		return -1;
	if (rsp.nlh.nlmsg_type == NLMSG_ERROR) {
		if (rsp.nlh.nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
			return -1;
		e = NLMSG_DATA(&rsp.nlh);
		return e->error == -ENOENT ? 0 : -1;
	}
	if (rsp.nlh.nlmsg_type != SOCK_DIAG_BY_FAMILY ||
	    rsp.nlh.nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
		return -1;
	m = NLMSG_DATA(&rsp.nlh);
	out_cookie[0] = m->udiag_cookie[0];
	out_cookie[1] = m->udiag_cookie[1];
	if (out_peer != NULL) {
		*out_peer = 0;
		off = NLMSG_LENGTH(sizeof(*m));
		while (off + sizeof(*at) <= rsp.nlh.nlmsg_len) {
			at = (struct nlattr *)(void *)(rsp.buf + off);
			if (at->nla_len < sizeof(*at) || off + at->nla_len > rsp.nlh.nlmsg_len)
				break;
			if (at->nla_type == UNIX_DIAG_PEER && at->nla_len >= sizeof(*at) + 4)
				memcpy(out_peer, (char *)at + sizeof(*at), 4);
			off += NLA_ALIGN(at->nla_len);
		}
	}
	return 1;
}

struct unread *
unread_new(void)
{
	struct unread *u;
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };

	if ((u = calloc(1, sizeof(*u))) == NULL)
		return NULL;
	u->cap = 1024;
	u->ring = calloc(u->cap, sizeof(*u->ring));
	u->truesize = calloc(UNREAD_CACHE_LEN, sizeof(*u->truesize));
	if (u->ring == NULL || u->truesize == NULL ||
	    socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, u->pair) == -1) {
		free(u->ring);
		free(u->truesize);
		free(u);
		return NULL;
	}
	u->nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (u->nl != -1)
		(void)setsockopt(u->nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return u;
}

void
unread_free(struct unread *u)
{
	if (u == NULL)
		return;
	close(u->pair[0]);
	close(u->pair[1]);
	if (u->nl != -1)
		close(u->nl);
	free(u->ring);
	free(u->truesize);
	free(u);
}

uint32_t
unread_truesize(struct unread *u, size_t len)
{
	char *buf = zeros, drain[64];
	int outq = 0;
	ssize_t r;

	if (len < UNREAD_CACHE_LEN && u->truesize[len] != 0)
		return u->truesize[len];
	if (len >= UNREAD_CACHE_LEN && (buf = calloc(1, len)) == NULL)
		return 0;
	r = send(u->pair[0], buf, len, MSG_DONTWAIT);
	if (r == (ssize_t)len && ioctl(u->pair[0], SIOCOUTQ, &outq) == -1)
		outq = 0;
	while (recv(u->pair[1], drain, sizeof(drain), MSG_DONTWAIT) >= 0)
		;
	if (buf != zeros)
		free(buf);
	if (r != (ssize_t)len || outq <= 0)
		return 0;
	if (len < UNREAD_CACHE_LEN)
		u->truesize[len] = (uint32_t)outq;
	return (uint32_t)outq;
}

bool
unread_has_diag(const struct unread *u)
{
	return u->nl != -1 && u->peer_ino != 0;
}

void
unread_connected(struct unread *u, int fd)
{
	struct stat st;
	uint32_t cookie[2];

	u->first = u->count = u->computed = 0;
	u->total = 0;
	u->cand = false;
	u->sends = u->cand_sends = 0;
	u->peer_ino = 0;
	if (u->nl == -1 || fstat(fd, &st) == -1 || st.st_ino > UINT32_MAX)
		return;
	if (diag_lookup(u->nl, (uint32_t)st.st_ino, NULL, cookie, &u->peer_ino) != 1 ||
	    u->peer_ino == 0 ||
	    diag_lookup(u->nl, u->peer_ino, NULL, u->peer_cookie, NULL) != 1)
		u->peer_ino = 0;
}

static struct unread_ent *
ent(struct unread *u, size_t i)
{
	return &u->ring[(u->first + i) % u->cap];
}

void
unread_sent(struct unread *u, size_t len)
{
	struct unread_ent *nring;
	size_t i;

	u->sends++;
	if (u->count == u->cap && u->cap < UNREAD_MAX &&
	    (nring = calloc(u->cap * 2, sizeof(*nring))) != NULL) {
		for (i = 0; i < u->count; i++)
			nring[i] = *ent(u, i);
		free(u->ring);
		u->ring = nring;
		u->first = 0;
		u->cap *= 2;
	}
	if (u->count == u->cap) {
		/* Never assumed read: counted when the reader goes (or at once if
		 * it does not, via unread_gone's caller). */
		u->first = (u->first + 1) % u->cap;
		u->count--;
		if (u->computed > 0)
			u->computed--;
		u->overflow++;
	}
	ent(u, u->count)->len = (uint32_t)len;
	ent(u, u->count)->cum = 0;
	u->count++;
}

/* Forget the entries proven read: cumulative size at most read. */
static void
confirm(struct unread *u, uint64_t read)
{
	while (u->count > 0 && u->computed > 0 && ent(u, 0)->cum <= read) {
		u->first = (u->first + 1) % u->cap;
		u->count--;
		u->computed--;
	}
}

void
unread_sample(struct unread *u, int fd)
{
	uint32_t ts, cookie[2];
	uint64_t read;
	int outq;

	if (u->calib_failed)
		return;
	/* Without sock_diag, the previous sample holds if a send succeeded since. */
	if (u->cand && u->sends > u->cand_sends) {
		confirm(u, u->cand_read);
		u->cand = false;
	}
	while (u->computed < u->count) {
		if ((ts = unread_truesize(u, ent(u, u->computed)->len)) == 0) {
			u->calib_failed = true;
			return;
		}
		u->total += ts;
		ent(u, u->computed)->cum = u->total;
		u->computed++;
	}
	if (ioctl(fd, SIOCOUTQ, &outq) == -1 || outq < 0 || (uint64_t)outq > u->total)
		return;
	read = u->total - (uint64_t)outq;
	if (unread_has_diag(u)) {
		/* The ioctl came first: a reader still in the socket table now had
		 * not had its queue freed then. */
		if (diag_lookup(u->nl, u->peer_ino, u->peer_cookie, cookie, NULL) == 1)
			confirm(u, read);
		return;
	}
	u->cand = true;
	u->cand_read = read;
	u->cand_sends = u->sends;
}

size_t
unread_pending(const struct unread *u)
{
	return u->count;
}

uint64_t
unread_gone(struct unread *u)
{
	uint64_t n = u->count + u->overflow;

	u->first = u->count = u->computed = 0;
	u->overflow = 0;
	u->cand = false;
	return n;
}
