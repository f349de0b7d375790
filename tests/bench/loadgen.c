/* Load client for tests/bench/run.sh: one epoll thread, every loop bounded in time.
 *
 *   loadgen tunnels PROXY_PORT ECHO_PORT CONC SECONDS
 *       CONC connections at a time, each: CONNECT 127.0.0.1:ECHO_PORT, read the 200,
 *       send 16 bytes, read them back, close; a new one starts as each ends.
 *       Prints: ok=N err=E secs=S rate=TUNNELS_PER_SECOND
 *   loadgen bulk PROXY_PORT SOURCE_PORT CONC SECONDS
 *       CONC tunnels to a source origin, read everything for SECONDS.
 *       Prints: ok=N err=E secs=S mbps=MB_PER_SECOND (MB = 10^6 bytes)
 *   loadgen idle PROXY_PORT ECHO_PORT N SECONDS
 *       open N tunnels (each proven by one echo round trip), print "ready N err=E",
 *       then hold them open until SECONDS have passed or SIGTERM/SIGINT arrives.
 *
 * Everything goes to 127.0.0.1.
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

enum mode { M_TUNNELS, M_BULK, M_IDLE };
enum state { ST_CONNECTING, ST_HEAD, ST_ECHO, ST_BULK, ST_HOLD };

#define PAYLOAD "0123456789abcdef"
#define PAYLOAD_LEN 16
#define HEADMAX 4096
#define MAXEV 512

struct conn {
	int fd;
	enum state st;
	char head[HEADMAX];
	size_t head_len;
	size_t echo_got;
};

static enum mode mode;
static int ep;
static int proxy_port, target_port;
static char req[256];
static size_t req_len;
static long ok_count, err_count, live;
static unsigned long long bulk_bytes;
static int counting;       /* bulk: bytes are counted only in the measured window */
static volatile sig_atomic_t stop_flag;

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

static void conn_end(struct conn *c, int ok)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
	live--;
	if (ok)
		ok_count++;
	else
		err_count++;
}

static int conn_start(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)proxy_port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	struct conn *c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		return -1;
	}
	c->fd = fd;
	c->st = ST_CONNECTING;
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	live++;
	return 0;
}

/* Returns 1 when the connection ended (freed), 0 otherwise. */
static int on_event(struct conn *c, uint32_t events)
{
	if (c->st == ST_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof err;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err || (events & EPOLLERR)) {
			conn_end(c, 0);
			return 1;
		}
		if (send(c->fd, req, req_len, MSG_NOSIGNAL) != (ssize_t)req_len) {
			conn_end(c, 0);
			return 1;
		}
		c->st = ST_HEAD;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		return 0;
	}
	char buf[256 * 1024];
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
			if (c->head_len < 12 || strncmp(c->head, "HTTP/1.", 7) || strncmp(c->head + 8, " 200", 4)) {
				conn_end(c, 0);
				return 1;
			}
			size_t extra = c->head_len - (size_t)(end + 4 - c->head);
			if (mode == M_BULK) {
				if (counting)
					bulk_bytes += extra;
				c->st = ST_BULK;
				ok_count++;
				continue;
			}
			if (extra) {        /* nothing was sent yet: nothing may come back */
				conn_end(c, 0);
				return 1;
			}
			if (send(c->fd, PAYLOAD, PAYLOAD_LEN, MSG_NOSIGNAL) != PAYLOAD_LEN) {
				conn_end(c, 0);
				return 1;
			}
			c->st = ST_ECHO;
			break;
		}
		case ST_ECHO:
			c->echo_got += (size_t)r;
			if (c->echo_got < PAYLOAD_LEN)
				continue;
			if (c->echo_got > PAYLOAD_LEN) {
				conn_end(c, 0);
				return 1;
			}
			if (mode == M_TUNNELS) {
				conn_end(c, 1);
				return 1;
			}
			c->st = ST_HOLD;
			ok_count++;
			return 0;
		case ST_BULK:
			if (counting)
				bulk_bytes += (unsigned long long)r;
			continue;
		case ST_HOLD:
			/* unexpected bytes or the tunnel closed under us */
			ok_count--;
			conn_end(c, 0);
			return 1;
		default:
			break;
		}
	}
	return 0;
}

static void run_until(double deadline, int (*done)(void))
{
	struct epoll_event evs[MAXEV];
	while (!stop_flag && now() < deadline && !(done && done())) {
		int ms = (int)((deadline - now()) * 1000);
		if (ms > 200)
			ms = 200;
		if (ms < 1)
			ms = 1;
		int n = epoll_wait(ep, evs, MAXEV, ms);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			int ended = on_event(c, evs[i].events);
			if (ended && mode == M_TUNNELS && now() < deadline && !stop_flag)
				if (conn_start() < 0)
					err_count++;
		}
		if (mode == M_TUNNELS && err_count > 100000)
			break;
	}
}

static long target_n;
static int idle_ready(void)
{
	return ok_count >= target_n;
}
static int bulk_ready(void)
{
	return ok_count >= target_n;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: loadgen tunnels|bulk|idle PROXY_PORT TARGET_PORT N SECONDS\n");
		return 2;
	}
	if (!strcmp(argv[1], "tunnels"))
		mode = M_TUNNELS;
	else if (!strcmp(argv[1], "bulk"))
		mode = M_BULK;
	else if (!strcmp(argv[1], "idle"))
		mode = M_IDLE;
	else
		return 2;
	proxy_port = atoi(argv[2]);
	target_port = atoi(argv[3]);
	long n = atol(argv[4]);
	double secs = atof(argv[5]);
	if (n < 1 || n > 20000 || secs <= 0 || secs > 3600)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	req_len = (size_t)snprintf(req, sizeof req,
		"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", target_port, target_port);
	ep = epoll_create1(0);

	if (mode == M_TUNNELS) {
		double t0 = now();
		for (long i = 0; i < n; i++)
			if (conn_start() < 0)
				err_count++;
		run_until(t0 + secs, NULL);
		double el = now() - t0;
		printf("ok=%ld err=%ld secs=%.2f rate=%.1f\n", ok_count, err_count, el, ok_count / el);
		return 0;
	}
	if (mode == M_BULK) {
		target_n = n;
		for (long i = 0; i < n; i++)
			if (conn_start() < 0)
				err_count++;
		run_until(now() + 10, bulk_ready);
		counting = 1;
		double t0 = now();
		run_until(t0 + secs, NULL);
		double el = now() - t0;
		printf("ok=%ld err=%ld secs=%.2f mbps=%.1f\n", ok_count, err_count, el,
		       bulk_bytes / el / 1e6);
		return 0;
	}
	/* idle: at most 64 handshakes in flight; bounded by time and attempts */
	target_n = n;
	double deadline = now() + 60;
	long started = 0;
	while (!stop_flag && ok_count < n && now() < deadline && started < 2 * n) {
		while (live < ok_count + 64 && started - err_count < n && started < 2 * n) {
			if (conn_start() < 0)
				err_count++;
			started++;
		}
		run_until(now() + 0.05, idle_ready);
	}
	printf("ready %ld err=%ld\n", ok_count, err_count);
	fflush(stdout);
	run_until(now() + secs, NULL);
	return 0;
}
