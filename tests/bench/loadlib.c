/* Client plumbing shared by the bench clients: see loadlib.h. */
#define _GNU_SOURCE
#include "loadlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { ST_CONNECTING, ST_HEAD, ST_ECHO, ST_BULK, ST_HOLD };

#define PAYLOAD "0123456789abcdef"
#define PAYLOAD_LEN 16
#define HEADMAX 4096
#define MAXEV 512

struct conn {
	int fd;
	enum state st;
	double t0;
	char req[LG_REQMAX];
	size_t req_len;
	char head[HEADMAX];
	size_t head_len;
	size_t echo_got;
};

int lg_proxy_port;
enum lg_after lg_after;
size_t (*lg_build_req)(char *req, long idx);
const char *lg_fail_tag;
double *lg_lat;
long lg_nlat;
long lg_next_index, lg_last_index = -1;
int lg_restart;
int lg_counting;
int lg_direct;
const unsigned char *lg_payload;
size_t lg_payload_len;
long lg_ok, lg_err, lg_live;
unsigned long long lg_bulk_bytes;
volatile sig_atomic_t lg_stop;

static int ep;

double lg_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_signal(int sig)
{
	(void)sig;
	lg_stop = 1;
}

void lg_init(void)
{
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	ep = epoll_create1(0);
}

size_t lg_connect_req(char *req, size_t cap, const char *host, const char *port, const char *extra)
{
	return (size_t)snprintf(req, cap, "CONNECT %s:%s HTTP/1.1\r\nHost: %s:%s\r\n%s\r\n",
	    host, port, host, port, extra ? extra : "");
}

int lg_head_is_200(const char *head, size_t len)
{
	return len >= 12 && !strncmp(head, "HTTP/1.", 7) && !strncmp(head + 8, " 200", 4);
}

static void conn_end(struct conn *c, int ok)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (ok && lg_lat != NULL)
		lg_lat[lg_nlat++] = lg_now() - c->t0;
	free(c);
	lg_live--;
	if (ok)
		lg_ok++;
	else
		lg_err++;
}

int lg_start(long idx)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)lg_proxy_port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct conn *c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		return -1;
	}
	if (lg_lat != NULL)
		c->t0 = lg_now();
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
		close(fd);
		free(c);
		return -1;
	}
	c->fd = fd;
	c->st = ST_CONNECTING;
	c->req_len = lg_direct ? 0 : lg_build_req(c->req, idx);
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	lg_live++;
	return 0;
}

int lg_more(void)
{
	return lg_last_index < 0 || lg_next_index < lg_last_index;
}

void lg_start_next(void)
{
	if (lg_start(lg_next_index++) < 0)
		lg_err++;
}

/* The tunnel is open (after the 200, or at once when direct): send the payload and go on
 * by lg_after. 1 when the connection ended. */
static int tunnel_open(struct conn *c)
{
	const void *p = lg_payload ? (const void *)lg_payload : PAYLOAD;
	size_t n = lg_payload ? lg_payload_len : (lg_after == LG_BULK ? 0 : PAYLOAD_LEN);
	/* the payload fits a fresh socket buffer: one send, never a partial one */
	if (n && send(c->fd, p, n, MSG_NOSIGNAL) != (ssize_t)n) {
		conn_end(c, 0);
		return 1;
	}
	if (lg_after == LG_BULK) {
		c->st = ST_BULK;
		lg_ok++;
		return 0;
	}
	c->st = ST_ECHO;
	return 0;
}

/* The response head has ended at END: go on by lg_after. 1 when the connection ended. */
static int on_head(struct conn *c, const char *end)
{
	size_t extra = c->head_len - (size_t)(end + 4 - c->head);
	/* nothing was sent yet: nothing may come back, except from a bulk source */
	if (!lg_head_is_200(c->head, c->head_len) || (extra && lg_after != LG_BULK)) {
		if (lg_fail_tag != NULL && lg_err == 0)
			fprintf(stderr, "%s: first failure: %.12s\n", lg_fail_tag, c->head);
		conn_end(c, 0);
		return 1;
	}
	if (lg_after == LG_BULK && lg_counting)
		lg_bulk_bytes += extra;
	return tunnel_open(c);
}

/* How many bytes the echo sends back. */
static size_t echo_len(void)
{
	return lg_payload ? lg_payload_len : PAYLOAD_LEN;
}

/* Returns 1 when the connection ended (freed), 0 otherwise. */
static int on_event(struct conn *c, uint32_t events)
{
	if (c->st == ST_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof err;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err || (events & EPOLLERR) ||
		    (!lg_direct && send(c->fd, c->req, c->req_len, MSG_NOSIGNAL) != (ssize_t)c->req_len)) {
			conn_end(c, 0);
			return 1;
		}
		c->st = ST_HEAD;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		return lg_direct ? tunnel_open(c) : 0;
	}
	static char buf[256 * 1024];
	for (int rounds = 0; rounds < 8; rounds++) {
		ssize_t r;
		if (c->st == ST_HEAD)
			r = recv(c->fd, c->head + c->head_len, HEADMAX - 1 - c->head_len, 0);
		else
			r = recv(c->fd, buf, sizeof buf, 0);
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (r <= 0) {
			conn_end(c, 0);
			return 1;
		}
		switch (c->st) {
		case ST_HEAD: {
			c->head_len += (size_t)r;
			c->head[c->head_len] = 0;
			char *end = strstr(c->head, "\r\n\r\n");
			if (!end) {
				if (c->head_len >= HEADMAX - 1) {
					conn_end(c, 0);
					return 1;
				}
				continue;
			}
			if (on_head(c, end))
				return 1;
			if (c->st == ST_BULK)
				continue;
			break;
		}
		case ST_ECHO:
			c->echo_got += (size_t)r;
			if (c->echo_got < echo_len())
				continue;
			if (c->echo_got > echo_len() || lg_after == LG_ECHO_CLOSE) {
				conn_end(c, c->echo_got == echo_len());
				return 1;
			}
			c->st = ST_HOLD;
			lg_ok++;
			return 0;
		case ST_BULK:
			if (lg_counting)
				lg_bulk_bytes += (unsigned long long)r;
			continue;
		case ST_HOLD:
			/* unexpected bytes or the tunnel closed under us */
			lg_ok--;
			conn_end(c, 0);
			return 1;
		default:
			break;
		}
	}
	return 0;
}

void lg_run_until(double deadline, int (*done)(void))
{
	struct epoll_event evs[MAXEV];
	while (!lg_stop && lg_now() < deadline && !(done && done())) {
		int ms = (int)((deadline - lg_now()) * 1000);
		if (ms > 200)
			ms = 200;
		if (ms < 1)
			ms = 1;
		int n = epoll_wait(ep, evs, MAXEV, ms);
		for (int i = 0; i < n; i++) {
			int ended = on_event(evs[i].data.ptr, evs[i].events);
			if (ended && lg_restart && lg_now() < deadline && !lg_stop && lg_more())
				lg_start_next();
		}
		if (lg_err > 100000)
			break;
	}
}

void lg_tunnels(long conc, double secs)
{
	lg_restart = 1;
	lg_last_index = -1;
	double t0 = lg_now();
	for (long i = 0; i < conc; i++)
		lg_start_next();
	lg_run_until(t0 + secs, NULL);
	double el = lg_now() - t0;
	printf("ok=%ld err=%ld secs=%.2f rate=%.1f\n", lg_ok, lg_err, el, lg_ok / el);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void lg_print_latency(void)
{
	double sum = 0;
	for (long i = 0; i < lg_nlat; i++)
		sum += lg_lat[i];
	qsort(lg_lat, (size_t)lg_nlat, sizeof *lg_lat, cmp_double);
	printf(" mean_ms=%.3f p50_ms=%.3f p95_ms=%.3f max_ms=%.3f", lg_nlat ? sum / lg_nlat * 1e3 : 0,
	    lg_nlat ? lg_lat[lg_nlat / 2] * 1e3 : 0, lg_nlat ? lg_lat[(long)(lg_nlat * 0.95)] * 1e3 : 0,
	    lg_nlat ? lg_lat[lg_nlat - 1] * 1e3 : 0);
}
