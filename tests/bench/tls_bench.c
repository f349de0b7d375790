/* Load client for tests/bench/tls_bench.sh: CONC blocking threads, every loop bounded in time.
 *
 *   tls_bench MODE PROXY_PORT TARGET_PORT CONC SECONDS plain|tls
 *
 *   tunnels     each: connect (and a full TLS handshake with `tls`: no resumption),
 *               CONNECT 127.0.0.1:TARGET, read the 200, 16 bytes there and back, close.
 *               Prints: ok=N err=E secs=S rate=TUNNELS_PER_SECOND
 *   get         one keep-alive connection per thread: GET http://127.0.0.1:TARGET/1k
 *               (absolute-form) again and again, each 1024-byte response read whole.
 *               Prints: ok=N err=E secs=S rate=REQUESTS_PER_SECOND
 *   bulk        one tunnel per thread to a source origin, read for SECONDS.
 *               Prints: ok=N err=E secs=S mibps=MIB_PER_SECOND
 *   handshakes  connect, full TLS handshake, close (nothing requested): for the
 *               script's CPU-per-handshake figure.  Prints: ok=N err=E secs=S rate=R
 *
 * `tls` speaks TLS to the proxy itself (an https:// proxy; TLS 1.3, the server's
 * certificate not verified: the cost measured is the proxy's).  Everything goes to
 * 127.0.0.1; every socket has a 10 s timeout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

enum mode { TUNNELS, GET, BULK, HANDSHAKES };

static enum mode mode;
static int proxy_port, target_port, use_tls;
static double secs;
static SSL_CTX *ctx;
static atomic_long n_ok, n_err;
static atomic_llong n_bytes;

struct io {
	int fd;
	SSL *ssl;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int io_open(struct io *io)
{
	struct sockaddr_in sa;
	struct timeval tv = { 10, 0 };
	int one = 1;

	memset(io, 0, sizeof(*io));
	if ((io->fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	setsockopt(io->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(io->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(io->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(proxy_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(io->fd, (struct sockaddr *)&sa, sizeof(sa)) == -1)
		return -1;
	if (!use_tls)
		return 0;
	if ((io->ssl = SSL_new(ctx)) == NULL)
		return -1;
	SSL_set_fd(io->ssl, io->fd);
	SSL_set_tlsext_host_name(io->ssl, "localhost");
	return SSL_connect(io->ssl) == 1 ? 0 : -1;
}

static void io_close(struct io *io)
{
	if (io->ssl != NULL) {
		SSL_shutdown(io->ssl);
		SSL_free(io->ssl);
	}
	if (io->fd >= 0)
		close(io->fd);
	ERR_clear_error();
	io->ssl = NULL;
	io->fd = -1;
}

static int io_write(struct io *io, const void *p, size_t n)
{
	if (io->ssl != NULL)
		return SSL_write(io->ssl, p, (int)n) == (int)n ? 0 : -1;
	return send(io->fd, p, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

static ssize_t io_read(struct io *io, void *p, size_t n)
{
	if (io->ssl != NULL) {
		int r = SSL_read(io->ssl, p, (int)n);

		return r > 0 ? r : -1;
	}
	return recv(io->fd, p, n, 0);
}

/* Read a response head (and what came after it, into buf); its length, or -1. */
static ssize_t read_head(struct io *io, char *buf, size_t cap, size_t *have)
{
	char *end;
	ssize_t r;

	while ((end = memmem(buf, *have, "\r\n\r\n", 4)) == NULL) {
		if (*have >= cap || (r = io_read(io, buf + *have, cap - *have)) <= 0)
			return -1;
		*have += (size_t)r;
	}
	return end + 4 - buf;
}

static int do_connect(struct io *io, char *buf, size_t cap)
{
	char req[128];
	size_t have = 0;
	ssize_t h;

	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
	    target_port, target_port);
	if (io_write(io, req, strlen(req)) == -1)
		return -1;
	h = read_head(io, buf, cap, &have);
	if (h < 0 || strncmp(buf, "HTTP/1.1 200", 12) != 0)
		return -1;
	return (int)(have - (size_t)h);
}

static void *worker(void *arg)
{
	double end = now() + secs;
	char buf[65536];
	struct io io;

	(void)arg;
	io.fd = -1;
	io.ssl = NULL;
	if (mode == TUNNELS || mode == HANDSHAKES) {
		while (now() < end) {
			int ok = io_open(&io) == 0;

			if (ok && mode == TUNNELS) {
				size_t got = 0;
				ssize_t r;

				ok = do_connect(&io, buf, sizeof(buf)) == 0 &&
				    io_write(&io, "0123456789abcdef", 16) == 0;
				while (ok && got < 16 && (r = io_read(&io, buf + got, 16 - got)) > 0)
					got += (size_t)r;
				ok = ok && got == 16;
			}
			io_close(&io);
			atomic_fetch_add(ok ? &n_ok : &n_err, 1);
		}
		return NULL;
	}
	if (io_open(&io) == -1) {
		io_close(&io);
		atomic_fetch_add(&n_err, 1);
		return NULL;
	}
	if (mode == BULK) {
		ssize_t r = do_connect(&io, buf, sizeof(buf));

		if (r < 0) {
			atomic_fetch_add(&n_err, 1);
		} else {
			long long total = r;

			while (now() < end && (r = io_read(&io, buf, sizeof(buf))) > 0)
				total += r;
			atomic_fetch_add(&n_bytes, total);
			atomic_fetch_add(&n_ok, 1);
		}
		io_close(&io);
		return NULL;
	}
	/* GET, keep-alive */
	{
		char req[256];
		size_t have = 0;

		snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/1k HTTP/1.1\r\n"
		    "Host: 127.0.0.1:%d\r\n\r\n", target_port, target_port);
		while (now() < end) {
			ssize_t h, r;
			size_t body = 1024;

			if (io_write(&io, req, strlen(req)) == -1 ||
			    (h = read_head(&io, buf, sizeof(buf), &have)) < 0 ||
			    strncmp(buf, "HTTP/1.1 200", 12) != 0) {
				atomic_fetch_add(&n_err, 1);
				break;
			}
			while (have < (size_t)h + body) {
				if ((r = io_read(&io, buf + have, sizeof(buf) - have)) <= 0)
					break;
				have += (size_t)r;
			}
			if (have < (size_t)h + body) {
				atomic_fetch_add(&n_err, 1);
				break;
			}
			memmove(buf, buf + h + body, have - (size_t)h - body);
			have -= (size_t)h + body;
			atomic_fetch_add(&n_ok, 1);
		}
		io_close(&io);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[256];
	double t0, el;
	int conc, i;

	if (argc != 7) {
		fprintf(stderr, "usage: tls_bench tunnels|get|bulk|handshakes PROXY_PORT "
		    "TARGET_PORT CONC SECONDS plain|tls\n");
		return 2;
	}
	mode = !strcmp(argv[1], "tunnels") ? TUNNELS : !strcmp(argv[1], "get") ? GET :
	    !strcmp(argv[1], "bulk") ? BULK : !strcmp(argv[1], "handshakes") ? HANDSHAKES : -1;
	proxy_port = atoi(argv[2]);
	target_port = atoi(argv[3]);
	conc = atoi(argv[4]);
	secs = atof(argv[5]);
	use_tls = !strcmp(argv[6], "tls");
	if ((int)mode == -1 || conc < 1 || conc > 256 || secs <= 0 || secs > 600)
		return 2;
	if (mode == HANDSHAKES && !use_tls)
		return 2;
	if (use_tls) {
		ctx = SSL_CTX_new(TLS_client_method());
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		/* Full handshakes only: no session is kept or offered. */
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	}
	t0 = now();
	for (i = 0; i < conc; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (i = 0; i < conc; i++)
		pthread_join(th[i], NULL);
	el = now() - t0;
	if (mode == BULK)
		printf("ok=%ld err=%ld secs=%.2f mibps=%.1f\n", (long)n_ok, (long)n_err, el,
		    (double)n_bytes / (1 << 20) / el);
	else
		printf("ok=%ld err=%ld secs=%.2f rate=%.0f\n", (long)n_ok, (long)n_err, el,
		    (double)n_ok / el);
	SSL_CTX_free(ctx);
	return 0;
}
