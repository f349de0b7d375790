/* Load client for tests/bench/run.sh: one epoll thread, every loop bounded in time.
 *
 *   loadgen [-d] [-p FILE] MODE PROXY_PORT TARGET_PORT N SECONDS
 *       -d       direct: PROXY_PORT is a plain TCP relay to the target (or the target
 *                itself); no CONNECT exchange, the tunnel's bytes go first
 *       -p FILE  the first tunnel bytes are FILE's (a TLS ClientHello, so that tunnels
 *                pass an sni=require rule; the echo sends it back, a source ignores it);
 *                default 16 fixed bytes for tunnels/idle and nothing for bulk
 *
 *   loadgen tunnels PROXY_PORT ECHO_PORT CONC SECONDS
 *       CONC connections at a time, each: CONNECT 127.0.0.1:ECHO_PORT, read the 200,
 *       send the payload, read it back, close; a new one starts as each ends.
 *       Prints: ok=N err=E secs=S rate=TUNNELS_PER_SECOND
 *   loadgen bulk PROXY_PORT SOURCE_PORT CONC SECONDS
 *       CONC tunnels to a source origin, read everything for SECONDS.
 *       Prints: ok=N err=E secs=S mbps=MB_PER_SECOND (MB = 10^6 bytes)
 *   loadgen idle PROXY_PORT ECHO_PORT N SECONDS
 *       open N tunnels (each proven by one echo round trip), print "ready N err=E",
 *       then hold them open until SECONDS have passed or SIGTERM/SIGINT arrives.
 *
 * Everything goes to 127.0.0.1.  The epoll plumbing is in loadlib.c (shared with
 * auth_bench.c).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loadlib.h"

static unsigned char payload[LG_PAYLOADMAX];

/* Read FILE as the tunnels' first bytes; -1 when it is unreadable, empty or too big. */
static int load_payload(const char *file)
{
	FILE *f = fopen(file, "rb");
	if (!f)
		return -1;
	size_t n = fread(payload, 1, sizeof payload, f);
	int big = fgetc(f) != EOF;
	fclose(f);
	if (n == 0 || big)
		return -1;
	lg_payload = payload;
	lg_payload_len = n;
	return 0;
}

static char req[256];
static size_t req_len;

/* Every connection sends the same request. */
static size_t same_req(char *out, long idx)
{
	(void)idx;
	memcpy(out, req, req_len);
	return req_len;
}

static long target_n;
static int n_ready(void)
{
	return lg_ok >= target_n;
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "+dp:")) != -1) {
		if (opt == 'd') {
			lg_direct = 1;
		} else if (opt == 'p') {
			if (load_payload(optarg) < 0) {
				fprintf(stderr, "loadgen: %s: unreadable, empty or over %d bytes\n", optarg,
				    LG_PAYLOADMAX);
				return 2;
			}
		} else {
			return 2;
		}
	}
	argc -= optind - 1;
	argv += optind - 1;
	if (argc != 6) {
		fprintf(stderr, "usage: loadgen [-d] [-p FILE] tunnels|bulk|idle PROXY_PORT TARGET_PORT N SECONDS\n");
		return 2;
	}
	if (!strcmp(argv[1], "tunnels"))
		lg_after = LG_ECHO_CLOSE;
	else if (!strcmp(argv[1], "bulk"))
		lg_after = LG_BULK;
	else if (!strcmp(argv[1], "idle"))
		lg_after = LG_ECHO_HOLD;
	else
		return 2;
	lg_proxy_port = atoi(argv[2]);
	int target_port = atoi(argv[3]);
	long n = atol(argv[4]);
	double secs = atof(argv[5]);
	if (n < 1 || n > 20000 || secs <= 0 || secs > 3600)
		return 2;
	char port[16];
	snprintf(port, sizeof port, "%d", target_port);
	req_len = lg_connect_req(req, sizeof req, "127.0.0.1", port, NULL);
	lg_build_req = same_req;
	lg_init();

	if (lg_after == LG_ECHO_CLOSE) {
		lg_tunnels(n, secs);
		return 0;
	}
	target_n = n;
	if (lg_after == LG_BULK) {
		for (long i = 0; i < n; i++)
			lg_start_next();
		lg_run_until(lg_now() + 10, n_ready);
		lg_counting = 1;
		double t0 = lg_now();
		lg_run_until(t0 + secs, NULL);
		double el = lg_now() - t0;
		printf("ok=%ld err=%ld secs=%.2f mbps=%.1f\n", lg_ok, lg_err, el, lg_bulk_bytes / el / 1e6);
		return 0;
	}
	/* idle: at most 64 handshakes in flight; bounded by time and attempts */
	double deadline = lg_now() + 60;
	long started = 0;
	while (!lg_stop && lg_ok < n && lg_now() < deadline && started < 2 * n) {
		while (lg_live < lg_ok + 64 && started - lg_err < n && started < 2 * n) {
			lg_start_next();
			started++;
		}
		lg_run_until(lg_now() + 0.05, n_ready);
	}
	printf("ready %ld err=%ld\n", lg_ok, lg_err);
	fflush(stdout);
	lg_run_until(lg_now() + secs, NULL);
	return 0;
}
