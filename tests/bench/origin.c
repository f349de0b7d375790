/* Loopback origins for tests/bench/run.sh: one epoll thread, bounded lifetime.
 *
 *   origin echo    PORTFILE [SECONDS]  TCP echo on 127.0.0.1:0 (byte-exact, honours EOF)
 *   origin http    PORTFILE [SECONDS]  HTTP/1.1 keep-alive: every request head gets
 *                                      200 with a 1024-byte body, or a 1 MiB one when the
 *                                      request line's path ends in /1m (pipelining
 *                                      answered in order; bodies sent from static buffers)
 *   origin source  PORTFILE [SECONDS]  writes an endless byte stream to each connection
 *   origin logsink PATH     [SECONDS]  unix datagram socket that reads and discards
 *
 * The chosen port is written to PORTFILE once listening. The process exits by
 * itself after SECONDS (default 900) so a lost one never lingers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum mode { M_ECHO, M_HTTP, M_SOURCE };

#define BUFSZ (64 * 1024)
#define MAXEV 256

#define HTTP_QMAX 1024   /* pipelined responses queued per connection, at most */
#define LINE_MAX_ 256    /* bytes of a request line kept to find its path */

struct conn {
	int fd;
	char *out;          /* pending output (echo) */
	size_t out_len, out_off, out_cap;
	int tail;           /* HTTP: how many bytes of "\r\n\r\n" matched so far */
	int want_out;
	/* HTTP: the request line being read, and the responses owed (a ring of kinds, the
	 * first one sent up to resp_off) */
	char line[LINE_MAX_];
	size_t line_len;
	int line_done;
	unsigned char q[HTTP_QMAX];
	int q_head, q_len;
	size_t resp_off;
};

static enum mode mode;
static int ep;
static char src_buf[BUFSZ];
enum { R_1K, R_1M };
static char *http_resp[2];     /* complete responses: head and body */
static size_t http_resp_len[2];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void set_events(struct conn *c, int out)
{
	/* echo stops reading while output is pending (backpressure) */
	uint32_t e = out ? (mode == M_ECHO ? EPOLLOUT : EPOLLIN | EPOLLOUT) : EPOLLIN;
	struct epoll_event ev = { .events = e, .data.ptr = c };
	if (out != c->want_out) {
		c->want_out = out;
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
}

static void conn_free(struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->out);
	free(c);
}

static int out_append(struct conn *c, const char *p, size_t n)
{
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + n)
			cap *= 2;
		if (cap > 64u << 20)
			return -1;
		char *o = realloc(c->out, cap);
		if (!o)
			return -1;
		c->out = o;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	return 0;
}

/* HTTP: send the owed responses from their static buffers; -1 on a fatal error. */
static int flush_http(struct conn *c)
{
	while (c->q_len > 0) {
		int k = c->q[c->q_head];
		ssize_t w = send(c->fd, http_resp[k] + c->resp_off, http_resp_len[k] - c->resp_off,
		    MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				set_events(c, 1);
				return 0;
			}
			return -1;
		}
		c->resp_off += (size_t)w;
		if (c->resp_off == http_resp_len[k]) {
			c->resp_off = 0;
			c->q_head = (c->q_head + 1) % HTTP_QMAX;
			c->q_len--;
		}
	}
	set_events(c, 0);
	return 0;
}

/* HTTP: one request head has ended; owe the response its request line asks for. */
static int http_owe(struct conn *c)
{
	if (c->q_len == HTTP_QMAX)
		return -1;
	c->line[c->line_len] = 0;
	char *sp = strstr(c->line, " HTTP/");
	int big = sp && sp - c->line >= 3 && !strncmp(sp - 3, "/1m", 3);
	c->q[(c->q_head + c->q_len) % HTTP_QMAX] = big ? R_1M : R_1K;
	c->q_len++;
	c->line_len = 0;
	c->line_done = 0;
	return 0;
}

/* Flush pending output; returns -1 on a fatal error. */
static int flush_out(struct conn *c)
{
	if (mode == M_HTTP)
		return flush_http(c);
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				set_events(c, 1);
				return 0;
			}
			return -1;
		}
		c->out_off += (size_t)w;
	}
	set_events(c, 0);
	return 0;
}

static void on_readable(struct conn *c)
{
	char buf[BUFSZ];
	for (int rounds = 0; rounds < 16; rounds++) {
		/* echo: apply backpressure, never read while output is pending */
		if (mode == M_ECHO && c->out_off < c->out_len)
			return;
		ssize_t r = recv(c->fd, buf, sizeof buf, 0);
		if (r == 0) {
			if (mode == M_ECHO && c->out_off < c->out_len)
				return;
			shutdown(c->fd, SHUT_WR);
			conn_free(c);
			return;
		}
		if (r < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			conn_free(c);
			return;
		}
		if (mode == M_ECHO) {
			ssize_t w = send(c->fd, buf, (size_t)r, MSG_NOSIGNAL);
			if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
				conn_free(c);
				return;
			}
			if (w < 0)
				w = 0;
			if (w < r) {
				if (out_append(c, buf + w, (size_t)(r - w)) < 0) {
					conn_free(c);
					return;
				}
				set_events(c, 1);
				return;
			}
		} else if (mode == M_HTTP) {
			static const char term[4] = { '\r', '\n', '\r', '\n' };
			int n = 0;
			for (ssize_t i = 0; i < r; i++) {
				if (!c->line_done) {
					if (buf[i] == '\r' || buf[i] == '\n')
						c->line_done = 1;
					else if (c->line_len < LINE_MAX_ - 1)
						c->line[c->line_len++] = buf[i];
				}
				if (buf[i] == term[c->tail]) {
					if (++c->tail == 4) {
						c->tail = 0;
						n++;
						if (http_owe(c) < 0) {
							conn_free(c);
							return;
						}
					}
				} else {
					c->tail = buf[i] == '\r' ? 1 : 0;
				}
			}
			if (n && flush_out(c) < 0) {
				conn_free(c);
				return;
			}
		}
		/* M_SOURCE: discard what the client sends */
	}
}

/* Returns 1 when c was freed. */
static int on_writable(struct conn *c)
{
	if (mode == M_SOURCE) {
		for (int rounds = 0; rounds < 16; rounds++) {
			ssize_t w = send(c->fd, src_buf, sizeof src_buf, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno != EAGAIN && errno != EWOULDBLOCK) {
					conn_free(c);
					return 1;
				}
				return 0;
			}
		}
		return 0;
	}
	if (flush_out(c) < 0) {
		conn_free(c);
		return 1;
	}
	/* echo: output drained, read again */
	if (mode == M_ECHO && c->out_off == c->out_len)
		set_events(c, 0);
	return 0;
}

static int logsink(const char *path, double deadline)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (fd < 0 || strlen(path) >= sizeof sa.sun_path)
		die("logsink socket");
	strcpy(sa.sun_path, path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("logsink bind");
	int sz = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
	struct timeval tv = { .tv_sec = 1 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	char buf[65536];
	while (now() < deadline)
		(void)recv(fd, buf, sizeof buf, 0);
	unlink(path);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: origin echo|http|source PORTFILE [SECONDS] | logsink PATH [SECONDS]\n");
		return 2;
	}
	double deadline = now() + (argc > 3 ? atof(argv[3]) : 900);
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(argv[1], "logsink"))
		return logsink(argv[2], deadline);
	if (!strcmp(argv[1], "echo"))
		mode = M_ECHO;
	else if (!strcmp(argv[1], "http"))
		mode = M_HTTP;
	else if (!strcmp(argv[1], "source"))
		mode = M_SOURCE;
	else
		return 2;

	memset(src_buf, 'z', sizeof src_buf);
	static const size_t body_len[2] = { 1024, 1024 * 1024 };
	for (int k = R_1K; k <= R_1M; k++) {
		http_resp[k] = malloc(body_len[k] + 256);
		if (!http_resp[k])
			die("malloc");
		int h = snprintf(http_resp[k], 256,
			"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
			"Cache-Control: no-store\r\nContent-Length: %zu\r\n\r\n", body_len[k]);
		memset(http_resp[k] + h, k == R_1K ? 'k' : 'm', body_len[k]);
		http_resp_len[k] = (size_t)h + body_len[k];
	}

	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 4096) < 0)
		die("bind/listen");
	socklen_t sl = sizeof sa;
	getsockname(ls, (struct sockaddr *)&sa, &sl);
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", argv[2]);
	FILE *pf = fopen(tmp, "w");
	if (!pf)
		die("portfile");
	fprintf(pf, "%d\n", ntohs(sa.sin_port));
	fclose(pf);
	rename(tmp, argv[2]);

	ep = epoll_create1(0);
	struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
	struct epoll_event evs[MAXEV];
	while (now() < deadline) {
		int n = epoll_wait(ep, evs, MAXEV, 1000);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (!c) {
				for (int k = 0; k < 64; k++) {
					int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
					if (fd < 0)
						break;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
					c = calloc(1, sizeof *c);
					if (!c) {
						close(fd);
						continue;
					}
					c->fd = fd;
					c->want_out = mode == M_SOURCE;
					struct epoll_event ev = {
						.events = EPOLLIN | (c->want_out ? EPOLLOUT : 0), .data.ptr = c };
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			if (evs[i].events & (EPOLLERR)) {
				conn_free(c);
				continue;
			}
			if ((evs[i].events & EPOLLOUT) && on_writable(c))
				continue;
			if (evs[i].events & (EPOLLIN | EPOLLHUP))
				on_readable(c);
		}
	}
	return 0;
}
