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

#include "gateway/http/http_msg.h"
#include "gateway/http/http_parse.h"

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

/* Methods are case-sensitive: only "HEAD" frames its response without a body. */
static void
test_response_head_exact(void **state)
{
	static const char raw[] = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n";
	static const char *const others[] = { "head", "Head", "hEAD", "HEADX", "HEA" };
	struct http_response *resp;
	struct http_framing f;
	const char *err;
	size_t i;

	(void)state;
	resp = malloc(sizeof(*resp));
	assert_non_null(resp);
	assert_int_equal(http_parse_response(raw, sizeof(raw) - 1, resp, &err), HTTP_PARSE_DONE);
	assert_int_equal(http_response_framing(resp, "HEAD", 4, &f, &err), 0);
	assert_int_equal(f.kind, HTTP_BODY_NONE);
	for (i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		assert_int_equal(http_response_framing(resp, others[i], strlen(others[i]), &f,
		    &err), 0);
		if (f.kind != HTTP_BODY_LENGTH || f.length != 7)
			fail_msg("response to \"%s\" not framed by its Content-Length", others[i]);
	}
	free(resp);
}

static void
test_field_classify(void **state)
{
	static const struct {
		const char *name;
		enum http_field_kind kind;
	} cases[] = {
		{ "Content-Length", HTTP_FIELD_HOP },
		{ "content-length", HTTP_FIELD_HOP },
		{ "TRANSFER-ENCODING", HTTP_FIELD_HOP },
		{ "Connection", HTTP_FIELD_HOP },
		{ "Keep-Alive", HTTP_FIELD_HOP },
		{ "Proxy-Authorization", HTTP_FIELD_HOP },
		{ "TE", HTTP_FIELD_HOP },
		{ "Trailer", HTTP_FIELD_HOP },
		{ "Upgrade", HTTP_FIELD_HOP },
		{ "Transfer_Encoding", HTTP_FIELD_LOOKALIKE },
		{ "transfer_encoding", HTTP_FIELD_LOOKALIKE },
		{ "Content_Length", HTTP_FIELD_LOOKALIKE },
		{ "Keep_Alive", HTTP_FIELD_LOOKALIKE },
		{ "Proxy_Connection", HTTP_FIELD_LOOKALIKE },
		{ "Proxy_Authorization", HTTP_FIELD_LOOKALIKE },
		{ "Proxy_Authenticate", HTTP_FIELD_LOOKALIKE },
		{ "Host", HTTP_FIELD_PLAIN },
		{ "X_Custom", HTTP_FIELD_PLAIN },
		{ "Content_Type", HTTP_FIELD_PLAIN },
		{ "Transfer_Encodings", HTTP_FIELD_PLAIN },
		{ "Transfer__Encoding", HTTP_FIELD_PLAIN },
		{ "Content-Lengt", HTTP_FIELD_PLAIN },
		{ "X-Content-Length", HTTP_FIELD_PLAIN },
		{ "_", HTTP_FIELD_PLAIN },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (http_field_classify(cases[i].name, strlen(cases[i].name)) != cases[i].kind)
			fail_msg("%s: classified %d, want %d", cases[i].name,
			    http_field_classify(cases[i].name, strlen(cases[i].name)), cases[i].kind);
}

static void
test_trailer_forwardable(void **state)
{
	static const char *const refused[] = {
		"Proxy-Authorization: Basic YQ==", "Content-Length: 5", "Transfer-Encoding: chunked",
		"transfer-encoding:chunked", "Transfer_Encoding: chunked", "Content_Length: 5",
		"Connection: close", "Keep-Alive: 1", "TE: trailers", "Trailer: X-A", "Upgrade: h2c",
		"Host: evil.example", "Authorization: Bearer x", "Cookie: a=b", "Set-Cookie: a=b",
		"Set_Cookie: a=b", "Content-Type: text/html", "Content-Encoding: gzip",
		"Content-Range: bytes 0-1/2", "Range: bytes=0-", "Cache-Control: no-store",
		"WWW-Authenticate: Basic", "Proxy-Authenticate: Basic", "Location: /x",
		"Expect: 100-continue", "If-None-Match: *", "Max-Forwards: 1", "Date: x", "Vary: *",
		"", ":x",
	};
	static const char *const passed[] = {
		"X-Ok: 1", "X-Checksum: abc", "Server-Timing: db;dur=1", "Digest: sha-256=x",
		"X_Custom: 1", "ETag-X: y", "Content-MD5: q",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (http_trailer_forwardable(refused[i], strlen(refused[i])))
			fail_msg("trailer \"%s\" would be forwarded", refused[i]);
	for (i = 0; i < sizeof(passed) / sizeof(passed[0]); i++)
		if (!http_trailer_forwardable(passed[i], strlen(passed[i])))
			fail_msg("trailer \"%s\" would be dropped", passed[i]);
}

/* A look-alike in a request head is refused; in a response head it is dropped. */
static void
test_lookalike_fields(void **state)
{
	static const char *const reqs[] = {
		"POST http://a.example/ HTTP/1.1\r\nHost: a.example\r\n"
		    "Transfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
		"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nContent_Length: 5\r\n\r\n",
		"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nkeep_alive: 5\r\n\r\n",
		"GET http://a.example/ HTTP/1.0\r\nProxy_Authorization: Basic YQ==\r\n\r\n",
	};
	struct http_request *req;
	struct http_framing f;
	const char *err;
	size_t i;
	char *s;

	(void)state;
	req = malloc(sizeof(*req));
	assert_non_null(req);
	for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		assert_int_equal(http_parse_request(reqs[i], strlen(reqs[i]), req, &err),
		    HTTP_PARSE_DONE);
		err = NULL;
		if (http_request_framing(req, &f, &err) != -1)
			fail_msg("request %zu with a look-alike field was accepted", i);
		assert_non_null(err);
	}
	free(req);

	/* Other underscores are ordinary names, passed on. */
	s = forward("GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nX_Trace: 1\r\n\r\n",
	    "a.example");
	assert_text(s, "GET / HTTP/1.1\r\nHost: a.example\r\nX_Trace: 1\r\n"
	    "Via: 1.1 egressd\r\nConnection: keep-alive\r\n\r\n");
	free(s);

	s = respond("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer_Encoding: chunked\r\n"
	    "Content_Length: 9\r\nKeep_Alive: 1\r\nPROXY_CONNECTION: close\r\nX_Ok: y\r\n\r\n",
	    "GET", NULL, true);
	assert_text(s, "HTTP/1.1 200 OK\r\nX_Ok: y\r\nVia: 1.1 egressd\r\n"
	    "Content-Length: 3\r\nConnection: keep-alive\r\n\r\n");
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

	/* With a sentence for the client (403 insecure_credentials). */
	http_write_error_text(out, 403, NULL, "Use the TLS listener.");
	s = drain(out);
	assert_text(s, "HTTP/1.1 403 Forbidden\r\n"
	    "Content-Type: text/plain\r\n"
	    "Content-Length: 36\r\n"
	    "Connection: close\r\n"
	    "\r\n"
	    "403 Forbidden\nUse the TLS listener.\n");
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
		cmocka_unit_test(test_response_head_exact),
		cmocka_unit_test(test_field_classify),
		cmocka_unit_test(test_trailer_forwardable),
		cmocka_unit_test(test_lookalike_fields),
		cmocka_unit_test(test_error_responses),
		cmocka_unit_test(test_status_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
