/* Tunnel client for tests/bench/sni_bench.sh: CONC threads, blocking sockets with
 * timeouts, every loop bounded in time.
 *
 *   sni_bench PROXY_PORT HOST TARGET_PORT HELLO_FILE CONC SECONDS
 *
 * Each tunnel: connect to 127.0.0.1:PROXY_PORT, send "CONNECT HOST:TARGET_PORT",
 * read the response head (must be 200), send the bytes of HELLO_FILE (a captured
 * TLS ClientHello), read the same number of bytes back (the target is a TCP
 * echo), check them, close.  A thread starts its next tunnel as each ends.
 * Prints: ok=N err=E secs=S rate=TUNNELS_PER_SECOND
 * (The request, the head check and the clock come from loadlib.c.)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "loadlib.h"

#define HEADMAX 4096
#define MAXHELLO 65536
#define MAXCONC 256

static int proxy_port;
static char req[512];
static size_t req_len;
static unsigned char hello[MAXHELLO];
static size_t hello_len;
static double end_time;

struct worker {
	pthread_t t;
	long ok, err;
	char first_err[160];
};

static int send_all(int fd, const void *p, size_t n)
{
	const char *b = p;
	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One tunnel; 0 on success, else -1 with why set. */
static int one_tunnel(const char **why)
{
	static const int one = 1;
	struct sockaddr_in sa;
	struct timeval tv = { 5, 0 };
	char head[HEADMAX];
	unsigned char back[MAXHELLO];
	size_t hl = 0, got = 0, extra = 0;
	char *end = NULL;
	int fd, rc = -1;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) {
		*why = "socket";
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)proxy_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		*why = "connect";
		goto out;
	}
	if (send_all(fd, req, req_len) < 0) {
		*why = "send CONNECT";
		goto out;
	}
	while (end == NULL) {
		ssize_t r;
		if (hl >= sizeof(head) - 1) {
			*why = "response head too long";
			goto out;
		}
		r = recv(fd, head + hl, sizeof(head) - 1 - hl, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			*why = r == 0 ? "EOF before the response head" : "recv head";
			goto out;
		}
		hl += (size_t)r;
		head[hl] = '\0';
		end = strstr(head, "\r\n\r\n");
	}
	if (!lg_head_is_200(head, hl)) {
		*why = "CONNECT not answered 200";
		goto out;
	}
	extra = hl - (size_t)(end + 4 - head);   /* the echo never speaks first */
	if (extra != 0) {
		*why = "bytes after the 200 before the hello";
		goto out;
	}
	if (send_all(fd, hello, hello_len) < 0) {
		*why = "send hello";
		goto out;
	}
	while (got < hello_len) {
		ssize_t r = recv(fd, back + got, hello_len - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			*why = r == 0 ? "EOF before the echo (tunnel refused?)" : "recv echo";
			goto out;
		}
		got += (size_t)r;
	}
	if (memcmp(back, hello, hello_len) != 0) {
		*why = "echo differs";
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	while (lg_now() < end_time) {
		const char *why = NULL;
		if (one_tunnel(&why) == 0)
			w->ok++;
		else {
			if (w->err++ == 0)
				snprintf(w->first_err, sizeof(w->first_err), "%s (errno %d)", why, errno);
			if (w->err > 1000)
				break;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct worker ws[MAXCONC];
	FILE *f;
	double t0, secs;
	long ok = 0, err = 0;
	int conc, i;

	if (argc != 7) {
		fprintf(stderr, "usage: sni_bench PROXY_PORT HOST TARGET_PORT HELLO_FILE CONC SECONDS\n");
		return 2;
	}
	proxy_port = atoi(argv[1]);
	req_len = lg_connect_req(req, sizeof(req), argv[2], argv[3], NULL);
	if (req_len >= sizeof(req)) {
		fprintf(stderr, "host too long\n");
		return 2;
	}
	f = fopen(argv[4], "rb");
	if (f == NULL) {
		perror(argv[4]);
		return 2;
	}
	hello_len = fread(hello, 1, sizeof(hello), f);
	fclose(f);
	if (hello_len == 0 || hello_len == sizeof(hello)) {
		fprintf(stderr, "%s: empty or over %d bytes\n", argv[4], MAXHELLO);
		return 2;
	}
	conc = atoi(argv[5]);
	secs = atof(argv[6]);
	if (conc < 1 || conc > MAXCONC || secs <= 0 || secs > 600) {
		fprintf(stderr, "CONC 1..%d, SECONDS 0..600\n", MAXCONC);
		return 2;
	}
	memset(ws, 0, sizeof(ws));
	t0 = lg_now();
	end_time = t0 + secs;
	for (i = 0; i < conc; i++)
		if (pthread_create(&ws[i].t, NULL, run, &ws[i]) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	for (i = 0; i < conc; i++) {
		pthread_join(ws[i].t, NULL);
		ok += ws[i].ok;
		err += ws[i].err;
	}
	secs = lg_now() - t0;
	for (i = 0; i < conc; i++)
		if (ws[i].err) {
			fprintf(stderr, "sni_bench: first error: %s\n", ws[i].first_err);
			break;
		}
	printf("ok=%ld err=%ld secs=%.2f rate=%.0f\n", ok, err, secs, ok / secs);
	return 0;
}
