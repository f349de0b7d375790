/*
 * fuzz_request — the client request head parser and what follows it: the
 * framing verdict, the target's URL or authority, and the forwarded head.
 *
 * Properties checked beyond "no crash": every span lies inside the input, a
 * complete head parses the same when cut at its end (the parser never looks
 * past the head), and a head refused as MORE never turns into ERROR on a
 * prefix it already accepted.
 */

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "gateway/http/http_msg.h"
#include "gateway/http/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct http_request req, req2;

static int
inside(const char *base, size_t size, const char *p, size_t len)
{
	return len == 0 || (p >= base && len <= size && (size_t)(p - base) <= size - len);
}

/*
 * The forwarded head, parsed back, has one reading: no look-alike field and
 * at most one framing field (the gateway's own).
 */
static void
check_forwarded(struct evbuffer *out)
{
	size_t len = evbuffer_get_length(out), i, nframing = 0;
	const char *p = (const char *)evbuffer_pullup(out, -1), *err;

	if (http_parse_request(p, len, &req2, &err) != HTTP_PARSE_DONE)
		return;         /* grown past the parser's bounds by Via and Host */
	assert(req2.head_len == len);
	for (i = 0; i < req2.nheaders; i++) {
		enum http_field_kind k = http_field_classify(req2.headers[i].name,
		    req2.headers[i].name_len);

		assert(k != HTTP_FIELD_LOOKALIKE);
		if (http_header_is(&req2.headers[i], "Content-Length") ||
		    http_header_is(&req2.headers[i], "Transfer-Encoding"))
			nframing++;
	}
	assert(nframing <= 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data, *err;
	struct http_framing f;
	struct http_target t;
	enum http_parse_result r;
	struct evbuffer *out;
	size_t i;

	r = http_parse_request(buf, size, &req, &err);
	if (r == HTTP_PARSE_ERROR)
		assert(err != NULL);
	if (r != HTTP_PARSE_DONE)
		return 0;

	assert(req.head_len >= 4 && req.head_len <= size && req.head_len <= HTTP_HEAD_MAX);
	assert(memcmp(buf + req.head_len - 4, "\r\n\r\n", 4) == 0);
	assert(inside(buf, size, req.method, req.method_len) && req.method_len > 0);
	assert(inside(buf, size, req.target, req.target_len) && req.target_len > 0);
	assert(req.version_minor == 0 || req.version_minor == 1);
	assert(req.nheaders <= HTTP_HEADERS_MAX);
	for (i = 0; i < req.nheaders; i++) {
		const struct http_header *h = &req.headers[i];

		assert(inside(buf, req.head_len, h->name, h->name_len) && h->name_len > 0);
		assert(inside(buf, req.head_len, h->value, h->value_len));
		assert(memchr(h->value, '\r', h->value_len) == NULL);
		assert(memchr(h->value, '\n', h->value_len) == NULL);
		assert(h->value_len == 0 || (h->value[0] != ' ' && h->value[0] != '\t'));
	}

	/* The head alone parses the same: nothing after it was looked at. */
	assert(http_parse_request(buf, req.head_len, &req2, &err) == HTTP_PARSE_DONE);
	assert(req2.head_len == req.head_len && req2.nheaders == req.nheaders);
	/* And one byte less is incomplete, not an error. */
	assert(http_parse_request(buf, req.head_len - 1, &req2, &err) == HTTP_PARSE_MORE);

	if (http_request_framing(&req, &f, &err) == -1) {
		assert(err != NULL);
		return 0;
	}
	/* A look-alike of a framing or hop-by-hop field is never accepted. */
	for (i = 0; i < req.nheaders; i++)
		assert(http_field_classify(req.headers[i].name, req.headers[i].name_len) !=
		    HTTP_FIELD_LOOKALIKE);
	assert(f.kind == HTTP_BODY_NONE || f.kind == HTTP_BODY_LENGTH ||
	    f.kind == HTTP_BODY_CHUNKED);

	if (req.method_len == 7 && memcmp(req.method, "CONNECT", 7) == 0) {
		if (http_parse_authority(req.target, req.target_len, &t, &err) == 0)
			assert(t.port != 0 && t.host_len > 0);
		return 0;
	}
	if (http_parse_absolute_url(req.target, req.target_len, &t, &err) == -1)
		return 0;
	out = evbuffer_new();
	if (out == NULL)
		return 0;
	http_write_request_head(out, &req, &t, "example.com", &f);
	assert(evbuffer_get_length(out) > 0);
	check_forwarded(out);
	evbuffer_free(out);
	return 0;
}
