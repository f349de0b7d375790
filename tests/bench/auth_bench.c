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
 * Everything goes to 127.0.0.1; a run never lasts more than 120 s.  The epoll plumbing
 * is in loadlib.c (shared with loadgen.c).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadlib.h"

static char target_port[16];
static const char *userfmt, *password;

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
		return lg_connect_req(req, LG_REQMAX, "127.0.0.1", target_port, NULL);
	char user[256], cred[600], enc[900], hdr[960];
	if (strstr(userfmt, "%d"))
		snprintf(user, sizeof user, userfmt, (int)i);
	else
		snprintf(user, sizeof user, "%s", userfmt);
	int n = snprintf(cred, sizeof cred, "%s:%s", user, password);
	b64((const unsigned char *)cred, (size_t)n, enc);
	snprintf(hdr, sizeof hdr, "Proxy-Authorization: Basic %s\r\n", enc);
	return lg_connect_req(req, LG_REQMAX, "127.0.0.1", target_port, hdr);
}

/* users mode: done when every tunnel has started and ended */
static int all_done(void)
{
	return lg_live == 0 && !lg_more();
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: auth_bench tunnels PROXY ECHO CONC SECONDS [USER PASS]\n"
				"       auth_bench users PROXY ECHO CONC N USERFMT PASS [FIRST]\n");
		return 2;
	}
	lg_proxy_port = atoi(argv[2]);
	snprintf(target_port, sizeof target_port, "%d", atoi(argv[3]));
	long conc = atol(argv[4]);
	if (conc < 1 || conc > 20000)
		return 2;
	lg_after = LG_ECHO_CLOSE;
	lg_build_req = build_req;
	lg_fail_tag = "auth_bench";
	lg_restart = 1;
	lg_init();

	if (!strcmp(argv[1], "tunnels")) {
		double secs = atof(argv[5]);
		if (secs <= 0 || secs > 120 || (argc != 6 && argc != 8))
			return 2;
		if (argc == 8) {
			userfmt = argv[6];
			password = argv[7];
		}
		lg_tunnels(conc, secs);
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
		lg_next_index = argc == 9 ? atol(argv[8]) : 0;
		lg_last_index = lg_next_index + n;
		lg_lat = calloc((size_t)n, sizeof *lg_lat);
		if (lg_lat == NULL)
			return 1;
		double t0 = lg_now();
		for (long i = 0; i < conc && lg_more(); i++)
			lg_start_next();
		lg_run_until(t0 + 120, all_done);
		double el = lg_now() - t0;
		printf("ok=%ld err=%ld secs=%.2f rate=%.1f", lg_ok, lg_err, el, lg_ok / el);
		lg_print_latency();
		printf("\n");
		return 0;
	}
	return 2;
}
