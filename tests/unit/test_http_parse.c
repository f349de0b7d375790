/*
 * test_http_parse — the request and response head parsers, absolute URLs and
 * CONNECT authorities, as tables of wire bytes and verdicts.
 *
 * Each request case gives the parse result and, for a complete head, the
 * framing verdict of http_request_framing(), because a smuggling shape can be
 * well formed for the parser and only refused by the framing rules.  Every
 * case is also fed in growing prefixes: a prefix of a good head must be MORE,
 * and no prefix may produce a different verdict than the whole.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gateway/http/http_parse.h"
#include "gateway/http/http_msg.h"

#define R(s) s, sizeof(s) - 1
#define OK 0
#define BAD -1
#define NA 1                            /* framing not evaluated */

#define GOOD_HEAD "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n"

struct req_case {
	const char *name;
	const char *raw;
	size_t len;
	enum http_parse_result parse;
	int framing;                    /* OK, BAD or NA */
	enum http_body_kind kind;       /* when framing is OK */
	uint64_t length;
	bool keep_alive;
};

static const struct req_case req_cases[] = {
	/* Good requests. */
	{ "simple GET", R(GOOD_HEAD "\r\n"), HTTP_PARSE_DONE, OK, HTTP_BODY_NONE, 0, true },
	{ "CONNECT", R("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_NONE, 0, true },
	{ "POST content-length", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_LENGTH, 5, true },
	{ "POST chunked", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_CHUNKED, 0, true },
	{ "chunked upper case", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_CHUNKED, 0, true },
	{ "TE name lower case", R("POST http://a/ HTTP/1.1\r\nhost: a\r\ntransfer-encoding: Chunked\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_CHUNKED, 0, true },
	{ "HTTP/1.0 no Host", R("GET http://a/ HTTP/1.0\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_NONE, 0, false },
	{ "HTTP/1.0 keep-alive", R("GET http://a/ HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_NONE, 0, true },
	{ "HTTP/1.1 close", R(GOOD_HEAD "Connection: close\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_NONE, 0, false },
	{ "Proxy-Connection close", R(GOOD_HEAD "Proxy-Connection: close\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_NONE, 0, false },
	{ "Connection token list", R(GOOD_HEAD "Connection: foo, close\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_NONE, 0, false },
	{ "repeated identical CL", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_LENGTH, 7, true },
	{ "CL list identical", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_LENGTH, 7, true },
	{ "CL zero", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_LENGTH, 0, true },
	{ "CL 18 digits", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999999\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_LENGTH, 999999999999999999ULL, true },
	{ "value OWS trimmed", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: \t 3 \t\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_LENGTH, 3, true },
	{ "empty value", R(GOOD_HEAD "X-Empty:\r\n\r\n"), HTTP_PARSE_DONE, OK, HTTP_BODY_NONE, 0, true },
	{ "HTAB and obs-text in value", R(GOOD_HEAD "X-A: a\tb \xe9\xff\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_NONE, 0, true },
	{ "tchar method", R("M-SEARCH http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_NONE, 0, true },
	{ "lower case method", R("get http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_NONE, 0, true },
	{ "Expect 100-continue", R("PUT http://a/ HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_LENGTH, 1, true },
	{ "query in target", R("GET http://a/p?q=1&r=%20 HTTP/1.1\r\nHost: a\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_NONE, 0, true },
	{ "origin form parses", R("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_NONE, 0, true },
	{ "Upgrade noted", R(GOOD_HEAD "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_NONE, 0, true },
	{ "tchar field name", R(GOOD_HEAD "X-!#$%&'*+.^_`|~: v\r\n\r\n"),
	    HTTP_PARSE_DONE, OK, HTTP_BODY_NONE, 0, true },

	/* Incomplete. */
	{ "empty", R(""), HTTP_PARSE_MORE, NA, 0, 0, false },
	{ "no final CRLF", R(GOOD_HEAD), HTTP_PARSE_MORE, NA, 0, 0, false },
	{ "half final CRLF", R(GOOD_HEAD "\r"), HTTP_PARSE_MORE, NA, 0, 0, false },
	{ "partial version", R("GET http://a/ HTTP/1."), HTTP_PARSE_MORE, NA, 0, 0, false },

	/* Request smuggling shapes. */
	{ "CL and TE", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "TE and CL", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "TE space before colon", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"),
	    HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "TE tab before colon", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n"),
	    HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "TE chunked then identity", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "TE twice chunked", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "TE gzip, chunked", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "TE chunked, chunked", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "TE xchunked", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "TE chunked;x", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "TE identity", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "TE empty", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "TE vertical tab", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0b" "chunked\r\n\r\n"),
	    HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "TE obs-folded", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"),
	    HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "TE in HTTP/1.0", R("POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "CL 1,2", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 1,2\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "CL differing fields", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "CL +5", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "CL -1", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "CL 0x10", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "CL 19 digits", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000000000\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "CL overflow", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551617\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "CL empty", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "CL inner space", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "CL empty list element", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 3,\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "CL decimal point", R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 3.0\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "duplicate Host", R(GOOD_HEAD "Host: evil.com\r\n\r\n"), HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "duplicate Host HTTP/1.0", R("GET http://a/ HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "missing Host 1.1", R("GET http://a/ HTTP/1.1\r\nAccept: */*\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },
	{ "Expect other", R("PUT http://a/ HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n"),
	    HTTP_PARSE_DONE, BAD, 0, 0, false },

	/* Malformed lines. */
	{ "obs-fold", R(GOOD_HEAD "X-A: a\r\n b\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "obs-fold tab", R(GOOD_HEAD "X-A: a\r\n\tb\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "space before first field", R("GET http://a/ HTTP/1.1\r\n Host: a\r\n\r\n"),
	    HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "bare LF request line", R("GET http://a/ HTTP/1.1\nHost: a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "bare LF field", R(GOOD_HEAD "X-A: a\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "bare LF end", R(GOOD_HEAD "\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "LF LF", R("GET http://a/ HTTP/1.1\n\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "bare CR in value", R(GOOD_HEAD "X-A: a\rb\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "bare CR end", R(GOOD_HEAD "\rX"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "bare CR request line", R("GET http://a/ HTTP/1.1\rHost: a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "NUL in value", R(GOOD_HEAD "X-A: a\0b\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "NUL in name", R(GOOD_HEAD "X\0A: b\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "DEL in value", R(GOOD_HEAD "X-A: a\x7f\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "ESC in value", R(GOOD_HEAD "X-A: \x1b[31m\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "space before colon", R("GET http://a/ HTTP/1.1\r\nHost : a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "empty field name", R(GOOD_HEAD ": v\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "no colon", R(GOOD_HEAD "X-A v\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "no colon at end", R(GOOD_HEAD "X-A\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "separator in name", R(GOOD_HEAD "X(A): v\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "slash in name", R(GOOD_HEAD "X/A: v\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "leading CRLF", R("\r\n" GOOD_HEAD "\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "leading space", R(" " GOOD_HEAD "\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "HTTP/0.9 style", R("GET /\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "HTTP/0.9 no CR", R("GET /\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "HTTP/2.0", R("GET http://a/ HTTP/2.0\r\nHost: a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "HTTP/1.2", R("GET http://a/ HTTP/1.2\r\nHost: a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "HTTP/01.1", R("GET http://a/ HTTP/01.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "HTTP/1.10", R("GET http://a/ HTTP/1.10\r\nHost: a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "HTTP/1.1 trailing space", R("GET http://a/ HTTP/1.1 \r\nHost: a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "lower case http", R("GET http://a/ http/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "HTTP/9999999999.1", R("GET http://a/ HTTP/9999999999.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "double space", R("GET  http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "double space before version", R("GET http://a/  HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "tab separator", R("GET\thttp://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "fragment in target", R("GET http://a/#frag HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "control in target", R("GET http://a/\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "8-bit in target", R("GET http://a/\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "bad method char", R("GE(T http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
	{ "missing version", R("GET http://a/\r\nHost: a\r\n\r\n"), HTTP_PARSE_ERROR, NA, 0, 0, false },
};

/* The CONNECT and absolute-form requests above are well formed; userinfo is the URL parser's job. */

static void
check_req(const struct req_case *c)
{
	struct http_request *req;
	struct http_framing f;
	enum http_parse_result r;
	const char *err = NULL;
	int fr;

	req = malloc(sizeof(*req));
	assert_non_null(req);
	r = http_parse_request(c->raw, c->len, req, &err);
	if (r != c->parse)
		fail_msg("%s: parse %d, expected %d (%s)", c->name, r, c->parse,
		    err ? err : "-");
	if (r == HTTP_PARSE_ERROR)
		assert_non_null(err);
	if (r == HTTP_PARSE_DONE) {
		assert_int_equal(req->head_len, c->len);
		fr = http_request_framing(req, &f, &err);
		if (c->framing != NA && fr != c->framing)
			fail_msg("%s: framing %d, expected %d (%s)", c->name, fr, c->framing,
			    err ? err : "-");
		if (fr == 0 && c->framing == OK) {
			if (f.kind != c->kind || f.length != c->length ||
			    f.keep_alive != c->keep_alive)
				fail_msg("%s: kind %d length %llu keep-alive %d", c->name, f.kind,
				    (unsigned long long)f.length, f.keep_alive);
		} else if (fr == -1)
			assert_non_null(err);
	}
	free(req);
}

static void
test_request_table(void **state)
{
	size_t i;

	(void)state;
	assert_true(sizeof(req_cases) / sizeof(req_cases[0]) >= 60);
	for (i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++)
		check_req(&req_cases[i]);
}

/* A prefix of any case is MORE, or the case's own ERROR: never DONE, never another verdict. */
static void
test_request_prefixes(void **state)
{
	struct http_request *req;
	enum http_parse_result r;
	const char *err;
	size_t i, n;

	(void)state;
	req = malloc(sizeof(*req));
	assert_non_null(req);
	for (i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
		const struct req_case *c = &req_cases[i];

		for (n = 0; n < c->len; n++) {
			r = http_parse_request(c->raw, n, req, &err);
			if (r != HTTP_PARSE_MORE && !(r == HTTP_PARSE_ERROR &&
			    c->parse == HTTP_PARSE_ERROR))
				fail_msg("%s: prefix %zu gives %d", c->name, n, r);
		}
	}
	free(req);
}

static void
test_request_fields(void **state)
{
	static const char raw[] = "PUT http://a/x HTTP/1.1\r\nHost:a\r\nX-Pad:  \t v a l \t \r\n"
	    "X-Empty: \r\n\r\nBODY";
	struct http_request *req;
	const char *err;

	(void)state;
	req = malloc(sizeof(*req));
	assert_non_null(req);
	assert_int_equal(http_parse_request(raw, sizeof(raw) - 1, req, &err), HTTP_PARSE_DONE);
	assert_int_equal(req->head_len, sizeof(raw) - 1 - 4);
	assert_int_equal(req->method_len, 3);
	assert_memory_equal(req->method, "PUT", 3);
	assert_int_equal(req->target_len, 10);
	assert_memory_equal(req->target, "http://a/x", 10);
	assert_int_equal(req->version_minor, 1);
	assert_int_equal(req->nheaders, 3);
	assert_true(http_header_is(&req->headers[0], "HOST"));
	assert_int_equal(req->headers[0].value_len, 1);
	assert_int_equal(req->headers[1].value_len, 5);
	assert_memory_equal(req->headers[1].value, "v a l", 5);
	assert_int_equal(req->headers[2].value_len, 0);
	assert_false(http_header_is(&req->headers[0], "Hos"));
	free(req);
}

static void
test_request_limits(void **state)
{
	struct http_request *req;
	const char *err;
	char *buf;
	size_t len, i;

	(void)state;
	req = malloc(sizeof(*req));
	buf = malloc(2 * HTTP_HEAD_MAX);
	assert_non_null(req);
	assert_non_null(buf);

	/* A head that never ends: MORE until 64 KiB, then TOO_LARGE. */
	len = (size_t)snprintf(buf, 2 * HTTP_HEAD_MAX, "GET http://a/ HTTP/1.1\r\nX-Big: ");
	memset(buf + len, 'a', 2 * HTTP_HEAD_MAX - len);
	assert_int_equal(http_parse_request(buf, HTTP_HEAD_MAX - 1, req, &err), HTTP_PARSE_MORE);
	assert_int_equal(http_parse_request(buf, HTTP_HEAD_MAX, req, &err), HTTP_PARSE_TOO_LARGE);
	assert_int_equal(http_parse_request(buf, 2 * HTTP_HEAD_MAX, req, &err),
	    HTTP_PARSE_TOO_LARGE);

	/* Exactly HTTP_HEAD_MAX bytes is accepted, one more is not. */
	len = (size_t)snprintf(buf, 2 * HTTP_HEAD_MAX, "GET http://a/ HTTP/1.1\r\nX-Big: ");
	memset(buf + len, 'a', HTTP_HEAD_MAX - len - 4);
	memcpy(buf + HTTP_HEAD_MAX - 4, "\r\n\r\nGET ", 8);
	assert_int_equal(http_parse_request(buf, HTTP_HEAD_MAX + 4, req, &err), HTTP_PARSE_DONE);
	assert_int_equal(req->head_len, HTTP_HEAD_MAX);
	memmove(buf + len + 1, buf + len, HTTP_HEAD_MAX - len);
	assert_int_equal(http_parse_request(buf, HTTP_HEAD_MAX + 1, req, &err),
	    HTTP_PARSE_TOO_LARGE);

	/* HTTP_HEADERS_MAX fields are fine, one more is too many. */
	len = (size_t)snprintf(buf, 2 * HTTP_HEAD_MAX, "GET http://a/ HTTP/1.1\r\n");
	for (i = 0; i < HTTP_HEADERS_MAX; i++)
		len += (size_t)snprintf(buf + len, 2 * HTTP_HEAD_MAX - len, "X-%zu: v\r\n", i);
	memcpy(buf + len, "\r\n", 2);
	assert_int_equal(http_parse_request(buf, len + 2, req, &err), HTTP_PARSE_DONE);
	assert_int_equal(req->nheaders, HTTP_HEADERS_MAX);
	memcpy(buf + len, "X-Y: v\r\n\r\n", 10);
	assert_int_equal(http_parse_request(buf, len + 10, req, &err), HTTP_PARSE_TOO_LARGE);

	/* An error early in a huge buffer is still an error, not TOO_LARGE. */
	memcpy(buf, "GET http://a/ HTTP/1.1\r\nX : v\r\n", 31);
	assert_int_equal(http_parse_request(buf, 2 * HTTP_HEAD_MAX, req, &err), HTTP_PARSE_ERROR);
	free(buf);
	free(req);
}

struct resp_case {
	const char *name;
	const char *raw;
	size_t len;
	enum http_parse_result parse;
	int status;
	int framing;                    /* OK, BAD or NA, for a GET */
	enum http_body_kind kind;
	bool keep_alive;
};

#define RESP_OK "HTTP/1.1 200 OK\r\n"

static const struct resp_case resp_cases[] = {
	{ "200 length", R(RESP_OK "Content-Length: 3\r\n\r\n"), HTTP_PARSE_DONE, 200, OK, HTTP_BODY_LENGTH, true },
	{ "200 chunked", R(RESP_OK "Transfer-Encoding: chunked\r\n\r\n"), HTTP_PARSE_DONE, 200, OK, HTTP_BODY_CHUNKED, true },
	{ "200 close-delimited", R(RESP_OK "Server: x\r\n\r\n"), HTTP_PARSE_DONE, 200, OK, HTTP_BODY_CLOSE, false },
	{ "1.0 length", R("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n"), HTTP_PARSE_DONE, 200, OK, HTTP_BODY_LENGTH, false },
	{ "1.0 keep-alive", R("HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n"), HTTP_PARSE_DONE, 200, OK, HTTP_BODY_LENGTH, true },
	{ "204 empty reason", R("HTTP/1.1 204 \r\n\r\n"), HTTP_PARSE_DONE, 204, OK, HTTP_BODY_NONE, true },
	{ "304 with length", R("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"), HTTP_PARSE_DONE, 304, OK, HTTP_BODY_NONE, true },
	{ "100 continue", R("HTTP/1.1 100 Continue\r\n\r\n"), HTTP_PARSE_DONE, 100, OK, HTTP_BODY_NONE, true },
	{ "200 with Upgrade", R(RESP_OK "Upgrade: h2c\r\nContent-Length: 0\r\n\r\n"), HTTP_PARSE_DONE, 200, OK, HTTP_BODY_LENGTH, true },
	{ "reason with obs-text", R("HTTP/1.1 404 Nicht \xe9 gefunden\t!\r\nContent-Length: 0\r\n\r\n"), HTTP_PARSE_DONE, 404, OK, HTTP_BODY_LENGTH, true },
	{ "599", R("HTTP/1.1 599 x\r\nContent-Length: 0\r\n\r\n"), HTTP_PARSE_DONE, 599, OK, HTTP_BODY_LENGTH, true },
	{ "101 unsolicited", R("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"), HTTP_PARSE_DONE, 101, BAD, 0, false },
	{ "CL and TE", R(RESP_OK "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_PARSE_DONE, 200, BAD, 0, false },
	{ "CL differing", R(RESP_OK "Content-Length: 3\r\nContent-Length: 4\r\n\r\n"), HTTP_PARSE_DONE, 200, BAD, 0, false },
	{ "TE gzip", R(RESP_OK "Transfer-Encoding: gzip\r\n\r\n"), HTTP_PARSE_DONE, 200, BAD, 0, false },
	{ "TE in 1.0", R("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_PARSE_DONE, 200, BAD, 0, false },
	{ "304 CL and TE", R("HTTP/1.1 304 x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_PARSE_DONE, 304, BAD, 0, false },
	{ "no reason no SP", R("HTTP/1.1 200\r\n\r\n"), HTTP_PARSE_ERROR, 0, NA, 0, false },
	{ "status 099", R("HTTP/1.1 099 x\r\n\r\n"), HTTP_PARSE_ERROR, 0, NA, 0, false },
	{ "status 600", R("HTTP/1.1 600 x\r\n\r\n"), HTTP_PARSE_ERROR, 0, NA, 0, false },
	{ "status 2 digits", R("HTTP/1.1 20 OK\r\n\r\n"), HTTP_PARSE_ERROR, 0, NA, 0, false },
	{ "status 4 digits", R("HTTP/1.1 2000 OK\r\n\r\n"), HTTP_PARSE_ERROR, 0, NA, 0, false },
	{ "HTTP/2", R("HTTP/2 200 OK\r\n\r\n"), HTTP_PARSE_ERROR, 0, NA, 0, false },
	{ "HTTP/1.2", R("HTTP/1.2 200 OK\r\n\r\n"), HTTP_PARSE_ERROR, 0, NA, 0, false },
	{ "lower case", R("http/1.1 200 OK\r\n\r\n"), HTTP_PARSE_ERROR, 0, NA, 0, false },
	{ "bare LF", R("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"), HTTP_PARSE_ERROR, 0, NA, 0, false },
	{ "obs-fold", R(RESP_OK "X: a\r\n b\r\n\r\n"), HTTP_PARSE_ERROR, 0, NA, 0, false },
	{ "space before colon", R(RESP_OK "Content-Length : 3\r\n\r\n"), HTTP_PARSE_ERROR, 0, NA, 0, false },
	{ "NUL in reason", R("HTTP/1.1 200 O\0K\r\n\r\n"), HTTP_PARSE_ERROR, 0, NA, 0, false },
	{ "double space", R("HTTP/1.1  200 OK\r\n\r\n"), HTTP_PARSE_ERROR, 0, NA, 0, false },
	{ "incomplete", R(RESP_OK "Content-Length: 3\r\n"), HTTP_PARSE_MORE, 0, NA, 0, false },
};

static void
test_response_table(void **state)
{
	struct http_response *resp;
	struct http_framing f;
	enum http_parse_result r;
	const char *err;
	size_t i, n;
	int fr;

	(void)state;
	resp = malloc(sizeof(*resp));
	assert_non_null(resp);
	for (i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
		const struct resp_case *c = &resp_cases[i];

		err = NULL;
		r = http_parse_response(c->raw, c->len, resp, &err);
		if (r != c->parse)
			fail_msg("%s: parse %d, expected %d (%s)", c->name, r, c->parse,
			    err ? err : "-");
		for (n = 0; n < c->len; n++) {
			r = http_parse_response(c->raw, n, resp, &err);
			if (r != HTTP_PARSE_MORE && !(r == HTTP_PARSE_ERROR &&
			    c->parse == HTTP_PARSE_ERROR))
				fail_msg("%s: prefix %zu gives %d", c->name, n, r);
		}
		if (c->parse != HTTP_PARSE_DONE)
			continue;
		r = http_parse_response(c->raw, c->len, resp, &err);
		assert_int_equal(resp->status, c->status);
		assert_int_equal(resp->head_len, c->len);
		fr = http_response_framing(resp, "GET", 3, &f, &err);
		if (fr != c->framing)
			fail_msg("%s: framing %d, expected %d (%s)", c->name, fr, c->framing,
			    err ? err : "-");
		if (fr == 0 && (f.kind != c->kind || f.keep_alive != c->keep_alive))
			fail_msg("%s: kind %d keep-alive %d", c->name, f.kind, f.keep_alive);
	}
	free(resp);
}

static void
test_response_head_method(void **state)
{
	static const char raw[] = RESP_OK "Content-Length: 100\r\n\r\n";
	struct http_response *resp;
	struct http_framing f;
	const char *err;

	(void)state;
	resp = malloc(sizeof(*resp));
	assert_non_null(resp);
	assert_int_equal(http_parse_response(raw, sizeof(raw) - 1, resp, &err), HTTP_PARSE_DONE);
	assert_int_equal(resp->reason_len, 2);
	assert_int_equal(http_response_framing(resp, "HEAD", 4, &f, &err), 0);
	assert_int_equal(f.kind, HTTP_BODY_NONE);
	assert_int_equal(http_response_framing(resp, "GET", 3, &f, &err), 0);
	assert_int_equal(f.kind, HTTP_BODY_LENGTH);
	assert_int_equal(f.length, 100);
	free(resp);
}

struct url_case {
	const char *in;
	bool connect;                   /* authority form instead of absolute URL */
	int result;
	const char *host;
	bool bracketed;
	uint16_t port;
	bool port_explicit;
	const char *path;
};

static const struct url_case url_cases[] = {
	{ "http://example.com/", false, 0, "example.com", false, 80, false, "/" },
	{ "http://example.com", false, 0, "example.com", false, 80, false, "/" },
	{ "HTTP://Example.COM:8080/a/b?c=d", false, 0, "Example.COM", false, 8080, true, "/a/b?c=d" },
	{ "http://192.0.2.1:1/x", false, 0, "192.0.2.1", false, 1, true, "/x" },
	{ "http://[2001:db8::1]/", false, 0, "2001:db8::1", true, 80, false, "/" },
	{ "http://[::ffff:192.0.2.1]:65535", false, 0, "::ffff:192.0.2.1", true, 65535, true, "/" },
	{ "http://a_b-c~d.example./", false, 0, "a_b-c~d.example.", false, 80, false, "/" },
	{ "http://a/?", false, 0, "a", false, 80, false, "/?" },
	{ "https://example.com/", false, -1, NULL, false, 0, false, NULL },
	{ "ftp://example.com/", false, -1, NULL, false, 0, false, NULL },
	{ "http:/example.com/", false, -1, NULL, false, 0, false, NULL },
	{ "http://", false, -1, NULL, false, 0, false, NULL },
	{ "http:///path", false, -1, NULL, false, 0, false, NULL },
	{ "http://user@example.com/", false, -1, NULL, false, 0, false, NULL },
	{ "http://user:pw@example.com/", false, -1, NULL, false, 0, false, NULL },
	{ "http://example.com@evil.com/", false, -1, NULL, false, 0, false, NULL },
	{ "http://@example.com/", false, -1, NULL, false, 0, false, NULL },
	{ "http://example.com/#frag", false, -1, NULL, false, 0, false, NULL },
	{ "http://example.com#frag", false, -1, NULL, false, 0, false, NULL },
	{ "http://example.com:0/", false, -1, NULL, false, 0, false, NULL },
	{ "http://example.com:65536/", false, -1, NULL, false, 0, false, NULL },
	{ "http://example.com:000080/", false, -1, NULL, false, 0, false, NULL },
	{ "http://example.com:/", false, -1, NULL, false, 0, false, NULL },
	{ "http://example.com:+80/", false, -1, NULL, false, 0, false, NULL },
	{ "http://example.com:80:80/", false, -1, NULL, false, 0, false, NULL },
	{ "http://example.com?q", false, -1, NULL, false, 0, false, NULL },
	{ "http://exa%6dple.com/", false, -1, NULL, false, 0, false, NULL },
	{ "http://exa mple.com/", false, -1, NULL, false, 0, false, NULL },
	{ "http://example.com\\@evil/", false, -1, NULL, false, 0, false, NULL },
	{ "http://[fe80::1%25eth0]/", false, -1, NULL, false, 0, false, NULL },
	{ "http://[2001:db8::1/", false, -1, NULL, false, 0, false, NULL },
	{ "http://[]/", false, -1, NULL, false, 0, false, NULL },
	{ "http://[2001:db8::1]x/", false, -1, NULL, false, 0, false, NULL },
	{ "http://2001:db8::1/", false, -1, NULL, false, 0, false, NULL },
	{ "http://a/\x7f", false, -1, NULL, false, 0, false, NULL },
	{ "example.com:443", true, 0, "example.com", false, 443, true, NULL },
	{ "[2001:db8::1]:443", true, 0, "2001:db8::1", true, 443, true, NULL },
	{ "192.0.2.1:22", true, 0, "192.0.2.1", false, 22, true, NULL },
	{ "example.com", true, -1, NULL, false, 0, false, NULL },
	{ "example.com:", true, -1, NULL, false, 0, false, NULL },
	{ ":443", true, -1, NULL, false, 0, false, NULL },
	{ "example.com:443/", true, -1, NULL, false, 0, false, NULL },
	{ "example.com:443?x", true, -1, NULL, false, 0, false, NULL },
	{ "user@example.com:443", true, -1, NULL, false, 0, false, NULL },
	{ "http://example.com:443", true, -1, NULL, false, 0, false, NULL },
	{ "example.com:0", true, -1, NULL, false, 0, false, NULL },
	{ "example.com:123456", true, -1, NULL, false, 0, false, NULL },
	{ "example.com:44 3", true, -1, NULL, false, 0, false, NULL },
	{ "2001:db8::1:443", true, -1, NULL, false, 0, false, NULL },
	{ "[2001:db8::1]", true, -1, NULL, false, 0, false, NULL },
	{ "ex\x01mple.com:443", true, -1, NULL, false, 0, false, NULL },
};

static void
test_url_table(void **state)
{
	struct http_target t;
	const char *err;
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < sizeof(url_cases) / sizeof(url_cases[0]); i++) {
		const struct url_case *c = &url_cases[i];

		err = NULL;
		if (c->connect)
			r = http_parse_authority(c->in, strlen(c->in), &t, &err);
		else
			r = http_parse_absolute_url(c->in, strlen(c->in), &t, &err);
		if (r != c->result)
			fail_msg("%s: %d, expected %d (%s)", c->in, r, c->result, err ? err : "-");
		if (r == -1) {
			assert_non_null(err);
			continue;
		}
		if (t.host_len != strlen(c->host) || memcmp(t.host, c->host, t.host_len) != 0)
			fail_msg("%s: host %.*s", c->in, (int)t.host_len, t.host);
		assert_int_equal(t.host_bracketed, c->bracketed);
		assert_int_equal(t.port, c->port);
		assert_int_equal(t.port_explicit, c->port_explicit);
		if (c->path == NULL)
			assert_int_equal(t.path_len, 0);
		else if (t.path_len != strlen(c->path) || memcmp(t.path, c->path, t.path_len) != 0)
			fail_msg("%s: path %.*s", c->in, (int)t.path_len, t.path);
	}
}

static void
test_char_classes(void **state)
{
	(void)state;
	assert_true(http_is_tchar('a'));
	assert_true(http_is_tchar('~'));
	assert_false(http_is_tchar('\0'));
	assert_false(http_is_tchar(':'));
	assert_false(http_is_tchar(' '));
	assert_false(http_is_tchar(0x80));
	assert_true(http_is_field_vchar('\t'));
	assert_true(http_is_field_vchar(0xff));
	assert_false(http_is_field_vchar('\r'));
	assert_false(http_is_field_vchar(0x7f));
	assert_false(http_is_field_vchar('\0'));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_table),
		cmocka_unit_test(test_request_prefixes),
		cmocka_unit_test(test_request_fields),
		cmocka_unit_test(test_request_limits),
		cmocka_unit_test(test_response_table),
		cmocka_unit_test(test_response_head_method),
		cmocka_unit_test(test_url_table),
		cmocka_unit_test(test_char_classes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
