/* Client for tests/bench/auth_bench.sh: loadgen's "tunnels" workload (one epoll
 * thread, bounded in time) with an optional Proxy-Authorization: Basic header.
 *
 *   auth_bench tunnels PROXY_PORT ECHO_PORT CONC SECONDS [USER PASS]
 *       CONC connections at a time, each: CONNECT 127.0.0.1:ECHO_PORT (with
 *       credentials when USER is given), read the 200, send 16 bytes, read them
 *       back, close; a new one starts as each ends.
 *       Prints: ok=N err=E secs=S rate=TUNNELS_PER_SECOND
 *   auth_bench users PROXY_PORT ECHO_PORT CONC N USERFMT PASS [FIRST]
 *       exactly N such tunnels, CONC at a time, the i-th (i = FIRST..FIRST+N-1)
 *       authenticated as USERFMT with %d replaced by i (a USERFMT without %d is
 *       the same user every time; "-" sends no credentials).  Each tunnel's
 *       latency, connect() to the echo coming back, is recorded.
 *       Prints: ok=N err=E secs=S rate=R mean_ms=M p50_ms=P p95_ms=Q max_ms=X
 *
 * Everything goes to 127.0.0.1; a run never lasts more than 120 s.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { ST_CONNECTING, ST_HEAD, ST_ECHO };

#define PAYLOAD "0123456789abcdef"
#define PAYLOAD_LEN 16
#define HEADMAX 4096
#define MAXEV 512
#define REQMAX 2048

struct conn {
	int fd;
	enum state st;
	double t0;
	char req[REQMAX];
	size_t req_len;
	char head[HEADMAX];
	size_t head_len;
	size_t echo_got;
};

static int ep;
static int proxy_port, target_port;
static long ok_count, err_count, live;
static volatile sig_atomic_t stop_flag;
static const char *userfmt, *password;
static long next_index, last_index;     /* users mode: indices still to start */
static double *lat;
static long nlat;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static size_t b64(const unsigned char *in, size_t len, char *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;
	for (i = 0; i + 2 < len; i += 3) {
		unsigned long w = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8 | in[i + 2];
		out[o++] = tab[w >> 18 & 63];
		out[o++] = tab[w >> 12 & 63];
		out[o++] = tab[w >> 6 & 63];
		out[o++] = tab[w & 63];
	}
	if (len - i >= 1) {
		unsigned long w = (unsigned long)in[i] << 16 | (len - i == 2 ? (unsigned long)in[i + 1] << 8 : 0);
		out[o++] = tab[w >> 18 & 63];
		out[o++] = tab[w >> 12 & 63];
		out[o++] = len - i == 2 ? tab[w >> 6 & 63] : '=';
		out[o++] = '=';
	}
	out[o] = 0;
	return o;
}

/* The CONNECT request for user index i (userfmt NULL or "-": no credentials). */
static size_t build_req(char *req, long i)
{
	if (userfmt == NULL || !strcmp(userfmt, "-"))
		return (size_t)snprintf(req, REQMAX, "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
		    target_port, target_port);
	char user[256], cred[600], enc[900];
	if (strstr(userfmt, "%d"))
		snprintf(user, sizeof user, userfmt, (int)i);
	else
		snprintf(user, sizeof user, "%s", userfmt);
	int n = snprintf(cred, sizeof cred, "%s:%s", user, password);
	b64((const unsigned char *)cred, (size_t)n, enc);
	return (size_t)snprintf(req, REQMAX,
	    "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nProxy-Authorization: Basic %s\r\n\r\n",
	    target_port, target_port, enc);
}

static void conn_end(struct conn *c, int ok)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (ok && lat != NULL)
		lat[nlat++] = now() - c->t0;
	free(c);
	live--;
	if (ok)
		ok_count++;
	else
		err_count++;
}

static int conn_start(long idx)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)proxy_port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct conn *c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		return -1;
	}
	c->t0 = now();
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
		close(fd);
		free(c);
		return -1;
	}
	c->fd = fd;
	c->st = ST_CONNECTING;
	c->req_len = build_req(c->req, idx);
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	live++;
	return 0;
}

static void on_event(struct conn *c, uint32_t events)
{
	if (c->st == ST_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof err;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err || (events & EPOLLERR) ||
		    send(c->fd, c->req, c->req_len, MSG_NOSIGNAL) != (ssize_t)c->req_len) {
			conn_end(c, 0);
			return;
		}
		c->st = ST_HEAD;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		return;
	}
	char buf[4096];
	for (int rounds = 0; rounds < 8; rounds++) {
		ssize_t r;
		if (c->st == ST_HEAD)
			r = recv(c->fd, c->head + c->head_len, HEADMAX - 1 - c->head_len, 0);
		else
			r = recv(c->fd, buf, sizeof buf, 0);
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) {
			conn_end(c, 0);
			return;
		}
		if (c->st == ST_HEAD) {
			c->head_len += (size_t)r;
			c->head[c->head_len] = 0;
			char *end = strstr(c->head, "\r\n\r\n");
			if (!end) {
				if (c->head_len >= HEADMAX - 1) {
					conn_end(c, 0);
					return;
				}
				continue;
			}
			if (c->head_len < 12 || strncmp(c->head, "HTTP/1.", 7) || strncmp(c->head + 8, " 200", 4) ||
			    c->head_len != (size_t)(end + 4 - c->head)) {
				if (err_count == 0)
					fprintf(stderr, "auth_bench: first failure: %.12s\n", c->head);
				conn_end(c, 0);
				return;
			}
			if (send(c->fd, PAYLOAD, PAYLOAD_LEN, MSG_NOSIGNAL) != PAYLOAD_LEN) {
				conn_end(c, 0);
				return;
			}
			c->st = ST_ECHO;
		} else {
			c->echo_got += (size_t)r;
			if (c->echo_got < PAYLOAD_LEN)
				continue;
			conn_end(c, c->echo_got == PAYLOAD_LEN);
			return;
		}
	}
}

static int more(void)
{
	return last_index < 0 || next_index < last_index;
}

static void run_until(double deadline)
{
	struct epoll_event evs[MAXEV];
	while (!stop_flag && now() < deadline && (live > 0 || more())) {
		int ms = (int)((deadline - now()) * 1000);
		if (ms > 200)
			ms = 200;
		if (ms < 1)
			ms = 1;
		int n = epoll_wait(ep, evs, MAXEV, ms);
		for (int i = 0; i < n; i++) {
			long before = live;
			on_event(evs[i].data.ptr, evs[i].events);
			if (live < before && now() < deadline && !stop_flag && more())
				if (conn_start(next_index++) < 0)
					err_count++;
		}
		if (err_count > 100000)
			break;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: auth_bench tunnels PROXY ECHO CONC SECONDS [USER PASS]\n"
				"       auth_bench users PROXY ECHO CONC N USERFMT PASS [FIRST]\n");
		return 2;
	}
	proxy_port = atoi(argv[2]);
	target_port = atoi(argv[3]);
	long conc = atol(argv[4]);
	if (conc < 1 || conc > 20000)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	ep = epoll_create1(0);

	if (!strcmp(argv[1], "tunnels")) {
		double secs = atof(argv[5]);
		if (secs <= 0 || secs > 120 || (argc != 6 && argc != 8))
			return 2;
		if (argc == 8) {
			userfmt = argv[6];
			password = argv[7];
		}
		last_index = -1;
		double t0 = now();
		for (long i = 0; i < conc; i++)
			if (conn_start(next_index++) < 0)
				err_count++;
		run_until(t0 + secs);
		double el = now() - t0;
		printf("ok=%ld err=%ld secs=%.2f rate=%.1f\n", ok_count, err_count, el, ok_count / el);
		return 0;
	}
	if (!strcmp(argv[1], "users")) {
		if (argc != 8 && argc != 9)
			return 2;
		long n = atol(argv[5]);
		if (n < 1 || n > 1000000)
			return 2;
		userfmt = argv[6];
		password = argv[7];
		next_index = argc == 9 ? atol(argv[8]) : 0;
		last_index = next_index + n;
		lat = calloc((size_t)n, sizeof *lat);
		if (lat == NULL)
			return 1;
		double t0 = now();
		for (long i = 0; i < conc && more(); i++)
			if (conn_start(next_index++) < 0)
				err_count++;
		run_until(t0 + 120);
		double el = now() - t0;
		double sum = 0;
		for (long i = 0; i < nlat; i++)
			sum += lat[i];
		qsort(lat, (size_t)nlat, sizeof *lat, cmp_double);
		printf("ok=%ld err=%ld secs=%.2f rate=%.1f mean_ms=%.3f p50_ms=%.3f p95_ms=%.3f max_ms=%.3f\n",
		    ok_count, err_count, el, ok_count / el, nlat ? sum / nlat * 1e3 : 0,
		    nlat ? lat[nlat / 2] * 1e3 : 0, nlat ? lat[(long)(nlat * 0.95)] * 1e3 : 0,
		    nlat ? lat[nlat - 1] * 1e3 : 0);
		return 0;
	}
	return 2;
}
