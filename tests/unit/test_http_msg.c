/*
 * test_http_msg — the heads the gateway writes, compared byte for byte.
 *
 * The forwarded head is where a proxy leaks credentials (Proxy-Authorization)
 * or lets a client steer the origin (Host, fields named in Connection), so
 * each case states the exact bytes expected on the wire.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "gateway/http_msg.h"
#include "gateway/http_parse.h"

/* Drain out into a NUL-terminated string the caller frees. */
static char *
drain(struct evbuffer *out)
{
	size_t len = evbuffer_get_length(out);
	char *s = malloc(len + 1);

	assert_non_null(s);
	evbuffer_remove(out, s, len);
	s[len] = '\0';
	return s;
}

static void
assert_text(const char *got, const char *want)
{
	if (strcmp(got, want) != 0)
		fail_msg("got:\n%s\nwant:\n%s", got, want);
}

/* Parse raw as a request and its URL, normalize nothing, write the forwarded head. */
static char *
forward(const char *raw, const char *host)
{
	struct http_request *req;
	struct http_framing f;
	struct http_target t;
	struct evbuffer *out;
	const char *err;
	char *s;

	req = malloc(sizeof(*req));
	out = evbuffer_new();
	assert_non_null(req);
	assert_non_null(out);
	assert_int_equal(http_parse_request(raw, strlen(raw), req, &err), HTTP_PARSE_DONE);
	assert_int_equal(http_request_framing(req, &f, &err), 0);
	assert_int_equal(http_parse_absolute_url(req->target, req->target_len, &t, &err), 0);
	http_write_request_head(out, req, &t, host, &f);
	s = drain(out);
	evbuffer_free(out);
	free(req);
	return s;
}

static void
test_request_hop_by_hop(void **state)
{
	char *s;

	(void)state;
	s = forward("GET http://example.com:8080/p?q HTTP/1.1\r\n"
	    "Host: wrong.example\r\n"
	    "User-Agent: t\r\n"
	    "Proxy-Authorization: Basic YWxpY2U6c2VjcmV0\r\n"
	    "Proxy-Connection: keep-alive\r\n"
	    "Connection: keep-alive, X-Secret,  x-other \r\n"
	    "X-Secret: s\r\n"
	    "x-OTHER: o\r\n"
	    "Keep-Alive: 300\r\n"
	    "TE: trailers\r\n"
	    "Trailer: X-Sum\r\n"
	    "Upgrade: h2c\r\n"
	    "Proxy-Authenticate: Basic\r\n"
	    "Via: 1.0 other\r\n"
	    "Accept: */*\r\n"
	    "Via: 1.1 second\r\n"
	    "\r\n", "example.com");
	assert_text(s, "GET /p?q HTTP/1.1\r\n"
	    "Host: example.com:8080\r\n"
	    "User-Agent: t\r\n"
	    "Accept: */*\r\n"
	    "Via: 1.0 other, 1.1 second, 1.1 egressd\r\n"
	    "Connection: keep-alive\r\n"
	    "\r\n");
	assert_null(strstr(s, "YWxpY2U6c2VjcmV0"));
	free(s);
}

static void
test_request_chunked_v6(void **state)
{
	char *s;

	(void)state;
	s = forward("POST http://[2001:DB8::1]/up HTTP/1.1\r\n"
	    "Host: [2001:db8::1]\r\n"
	    "Transfer-Encoding: chunked\r\n"
	    "Expect: 100-continue\r\n"
	    "\r\n", "2001:db8::1");
	assert_text(s, "POST /up HTTP/1.1\r\n"
	    "Host: [2001:db8::1]\r\n"
	    "Expect: 100-continue\r\n"
	    "Via: 1.1 egressd\r\n"
	    "Transfer-Encoding: chunked\r\n"
	    "Connection: keep-alive\r\n"
	    "\r\n");
	free(s);
}

static void
test_request_length_http10(void **state)
{
	char *s;

	(void)state;
	/* A 1.0 client: no Host needed, Content-Length rewritten, Via says 1.0. */
	s = forward("PUT http://a.example HTTP/1.0\r\n"
	    "Content-Length: 005\r\n"
	    "Connection: close\r\n"
	    "\r\n", "a.example");
	assert_text(s, "PUT / HTTP/1.1\r\n"
	    "Host: a.example\r\n"
	    "Via: 1.0 egressd\r\n"
	    "Content-Length: 5\r\n"
	    "Connection: keep-alive\r\n"
	    "\r\n");
	free(s);

	/* Port 80 written explicitly is still left out of Host. */
	s = forward("GET http://a.example:80/ HTTP/1.1\r\nHost: a.example:80\r\n\r\n", "a.example");
	assert_text(s, "GET / HTTP/1.1\r\n"
	    "Host: a.example\r\n"
	    "Via: 1.1 egressd\r\n"
	    "Connection: keep-alive\r\n"
	    "\r\n");
	free(s);
}

/* Parse raw as a response, frame it for method, write it with the given framing. */
static char *
respond(const char *raw, const char *method, const struct http_framing *override,
    bool keep_alive)
{
	struct http_response *resp;
	struct http_framing f;
	struct evbuffer *out;
	const char *err;
	char *s;

	resp = malloc(sizeof(*resp));
	out = evbuffer_new();
	assert_non_null(resp);
	assert_non_null(out);
	assert_int_equal(http_parse_response(raw, strlen(raw), resp, &err), HTTP_PARSE_DONE);
	assert_int_equal(http_response_framing(resp, method, strlen(method), &f, &err), 0);
	http_write_response_head(out, resp, override != NULL ? override : &f, keep_alive);
	s = drain(out);
	evbuffer_free(out);
	free(resp);
	return s;
}

static void
test_response_length(void **state)
{
	char *s;

	(void)state;
	s = respond("HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/html\r\n"
	    "Content-Length: 12\r\n"
	    "Connection: close, X-Hop\r\n"
	    "X-Hop: 1\r\n"
	    "Keep-Alive: timeout=5\r\n"
	    "Proxy-Authenticate: Basic realm=\"evil\"\r\n"
	    "Via: 1.1 cdn\r\n"
	    "\r\n", "GET", NULL, true);
	assert_text(s, "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/html\r\n"
	    "Via: 1.1 cdn, 1.1 egressd\r\n"
	    "Content-Length: 12\r\n"
	    "Connection: keep-alive\r\n"
	    "\r\n");
	free(s);
}

static void
test_response_rechunk(void **state)
{
	struct http_framing out = { .kind = HTTP_BODY_CHUNKED };
	char *s;

	(void)state;
	/* A close-delimited 1.0 body re-chunked for a keep-alive client. */
	s = respond("HTTP/1.0 200 Fine\r\nServer: old\r\n\r\n", "GET", &out, true);
	assert_text(s, "HTTP/1.1 200 Fine\r\n"
	    "Server: old\r\n"
	    "Via: 1.0 egressd\r\n"
	    "Transfer-Encoding: chunked\r\n"
	    "Connection: keep-alive\r\n"
	    "\r\n");
	free(s);

	/* Passed on close-delimited: Connection: close whatever keep_alive says. */
	s = respond("HTTP/1.1 200 OK\r\n\r\n", "GET", NULL, true);
	assert_text(s, "HTTP/1.1 200 OK\r\nVia: 1.1 egressd\r\nConnection: close\r\n\r\n");
	free(s);
}

static void
test_response_bodiless(void **state)
{
	char *s;

	(void)state;
	/* HEAD: the origin's Content-Length is metadata and stays. */
	s = respond("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", "HEAD", NULL, true);
	assert_text(s, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nVia: 1.1 egressd\r\n"
	    "Connection: keep-alive\r\n\r\n");
	free(s);

	/* 204 with an empty reason; a Content-Length there is dropped. */
	s = respond("HTTP/1.1 204 \r\nContent-Length: 0\r\n\r\n", "GET", NULL, false);
	assert_text(s, "HTTP/1.1 204 \r\nVia: 1.1 egressd\r\nConnection: close\r\n\r\n");
	free(s);

	/* 100 Continue: no framing, no Connection. */
	s = respond("HTTP/1.1 100 Continue\r\n\r\n", "PUT", NULL, true);
	assert_text(s, "HTTP/1.1 100 Continue\r\nVia: 1.1 egressd\r\n\r\n");
	free(s);
}

static void
test_response_upgrade_not_switch(void **state)
{
	static const char raw[] = "HTTP/1.1 200 OK\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nContent-Length: 2\r\n\r\n";
	struct http_response *resp;
	struct http_framing f;
	const char *err;
	char *s;

	(void)state;
	resp = malloc(sizeof(*resp));
	assert_non_null(resp);
	assert_int_equal(http_parse_response(raw, sizeof(raw) - 1, resp, &err), HTTP_PARSE_DONE);
	assert_int_equal(http_response_framing(resp, "GET", 3, &f, &err), 0);
	assert_true(f.has_upgrade);
	assert_int_equal(f.kind, HTTP_BODY_LENGTH);
	assert_int_equal(f.length, 2);
	assert_true(f.keep_alive);
	free(resp);
	s = respond(raw, "GET", NULL, true);
	assert_null(strstr(s, "Upgrade"));
	free(s);
}

static void
test_error_responses(void **state)
{
	static const int statuses[] = { 400, 403, 407, 413, 414, 429, 431, 500, 501, 502, 503, 504 };
	struct evbuffer *out;
	char *s, *body, want[128];
	size_t i;

	(void)state;
	out = evbuffer_new();
	assert_non_null(out);

	http_write_error(out, 403, NULL);
	s = drain(out);
	assert_text(s, "HTTP/1.1 403 Forbidden\r\n"
	    "Content-Type: text/plain\r\n"
	    "Content-Length: 14\r\n"
	    "Connection: close\r\n"
	    "\r\n"
	    "403 Forbidden\n");
	free(s);

	http_write_error(out, 407, "Proxy-Authenticate: Basic realm=\"Corp\"");
	s = drain(out);
	assert_text(s, "HTTP/1.1 407 Proxy Authentication Required\r\n"
	    "Content-Type: text/plain\r\n"
	    "Content-Length: 34\r\n"
	    "Connection: close\r\n"
	    "Proxy-Authenticate: Basic realm=\"Corp\"\r\n"
	    "\r\n"
	    "407 Proxy Authentication Required\n");
	free(s);

	/* A header with a line break would split the response: dropped. */
	http_write_error(out, 400, "X-A: b\r\nX-Injected: c");
	s = drain(out);
	assert_null(strstr(s, "Injected"));
	free(s);

	for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		http_write_error(out, statuses[i], NULL);
		s = drain(out);
		assert_string_not_equal(http_status_text(statuses[i]), "Error");
		snprintf(want, sizeof(want), "HTTP/1.1 %d %s\r\n", statuses[i],
		    http_status_text(statuses[i]));
		assert_true(strncmp(s, want, strlen(want)) == 0);
		body = strstr(s, "\r\n\r\n");
		assert_non_null(body);
		body += 4;
		snprintf(want, sizeof(want), "Content-Length: %zu\r\n", strlen(body));
		assert_non_null(strstr(s, want));
		assert_non_null(strstr(s, "Connection: close\r\n"));
		free(s);
	}
	evbuffer_free(out);
}

static void
test_status_text(void **state)
{
	(void)state;
	assert_string_equal(http_status_text(502), "Bad Gateway");
	assert_string_equal(http_status_text(504), "Gateway Timeout");
	assert_string_equal(http_status_text(431), "Request Header Fields Too Large");
	assert_string_equal(http_status_text(299), "Error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_hop_by_hop),
		cmocka_unit_test(test_request_chunked_v6),
		cmocka_unit_test(test_request_length_http10),
		cmocka_unit_test(test_response_length),
		cmocka_unit_test(test_response_rechunk),
		cmocka_unit_test(test_response_bodiless),
		cmocka_unit_test(test_response_upgrade_not_switch),
		cmocka_unit_test(test_error_responses),
		cmocka_unit_test(test_status_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
