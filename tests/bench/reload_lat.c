/* Client for tests/bench/policy_bench.sh reload: tunnel latency through a running gateway.
 *
 *   reload_lat PROXY_PORT HOST PORT CONC SECONDS
 *       CONC connections at a time, each: CONNECT HOST:PORT, read the 200, send 16 bytes,
 *       read them back from the echo, close; a new one starts as each ends, for SECONDS.
 *       Prints: ok=N err=E secs=S rate=R mean_ms=.. p50_ms=.. p95_ms=.. max_ms=.. p99_ms=..
 *
 * The worst latency is what a policy reload must not raise: a worker that stalled while a
 * new policy was built or an old one freed would show here.  Everything goes to 127.0.0.1;
 * bounded by SECONDS and by LAT_MAX tunnels.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadlib.h"

#define LAT_MAX 2000000L

static char req[LG_REQMAX];
static size_t req_len;

static size_t same_req(char *out, long idx)
{
	(void)idx;
	memcpy(out, req, req_len);
	return req_len;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: reload_lat PROXY_PORT HOST PORT CONC SECONDS\n");
		return 2;
	}
	lg_proxy_port = atoi(argv[1]);
	long conc = atol(argv[4]);
	double secs = atof(argv[5]);
	if (conc < 1 || conc > 1000 || secs <= 0 || secs > 120)
		return 2;
	req_len = lg_connect_req(req, sizeof req, argv[2], argv[3], NULL);
	if (req_len >= sizeof req)
		return 2;
	lg_build_req = same_req;
	lg_after = LG_ECHO_CLOSE;
	if ((lg_lat = calloc(LAT_MAX, sizeof *lg_lat)) == NULL)
		return 1;
	lg_init();
	lg_restart = 1;
	lg_last_index = LAT_MAX;
	double t0 = lg_now();
	for (long i = 0; i < conc && lg_more(); i++)
		lg_start_next();
	lg_run_until(t0 + secs, NULL);
	double el = lg_now() - t0;
	printf("ok=%ld err=%ld secs=%.2f rate=%.1f", lg_ok, lg_err, el, lg_ok / el);
	lg_print_latency();     /* sorts lg_lat */
	printf(" p99_ms=%.3f\n", lg_nlat ? lg_lat[(long)(lg_nlat * 0.99)] * 1e3 : 0);
	return 0;
}
