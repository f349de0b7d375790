/*
 * fuzz_response — the origin's status line and header fields, the response
 * framing for GET and HEAD, and the head written back to the client.
 *
 * The origin is as hostile as the client: the properties are the request
 * fuzzer's (spans inside the input, the head parses the same when cut at its
 * end) plus a bodiless HEAD answer.
 */

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "gateway/http/http_msg.h"
#include "gateway/http/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct http_response resp, resp2;

static int
inside(const char *base, size_t size, const char *p, size_t len)
{
	return len == 0 || (p >= base && len <= size && (size_t)(p - base) <= size - len);
}

/* The head written to the client, parsed back, carries no look-alike field. */
static void
check_written(struct evbuffer *out)
{
	size_t len = evbuffer_get_length(out), i;
	const char *p = (const char *)evbuffer_pullup(out, -1), *err;

	if (http_parse_response(p, len, &resp2, &err) != HTTP_PARSE_DONE)
		return;         /* grown past the parser's bounds by Via */
	for (i = 0; i < resp2.nheaders; i++)
		assert(http_field_classify(resp2.headers[i].name, resp2.headers[i].name_len) !=
		    HTTP_FIELD_LOOKALIKE);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data, *err;
	struct http_framing f, h;
	enum http_parse_result r;
	struct evbuffer *out;
	size_t i;

	r = http_parse_response(buf, size, &resp, &err);
	if (r == HTTP_PARSE_ERROR)
		assert(err != NULL);
	if (r != HTTP_PARSE_DONE)
		return 0;

	assert(resp.head_len >= 4 && resp.head_len <= size && resp.head_len <= HTTP_HEAD_MAX);
	assert(resp.status >= 100 && resp.status <= 599);
	assert(inside(buf, size, resp.reason, resp.reason_len));
	for (i = 0; i < resp.nheaders; i++) {
		assert(inside(buf, resp.head_len, resp.headers[i].name, resp.headers[i].name_len));
		assert(inside(buf, resp.head_len, resp.headers[i].value, resp.headers[i].value_len));
	}
	assert(http_parse_response(buf, resp.head_len, &resp2, &err) == HTTP_PARSE_DONE);
	assert(resp2.head_len == resp.head_len);
	assert(http_parse_response(buf, resp.head_len - 1, &resp2, &err) == HTTP_PARSE_MORE);

	if (http_response_framing(&resp, "GET", 3, &f, &err) == -1) {
		assert(err != NULL);
		assert(http_response_framing(&resp, "HEAD", 4, &h, &err) == -1);
		return 0;
	}
	assert(http_response_framing(&resp, "HEAD", 4, &h, &err) == 0);
	assert(h.kind == HTTP_BODY_NONE);
	/* Methods are case-sensitive: "head" is framed like GET. */
	assert(http_response_framing(&resp, "head", 4, &h, &err) == 0);
	assert(h.kind == f.kind && h.length == f.length && h.keep_alive == f.keep_alive);
	if (f.kind == HTTP_BODY_CLOSE)
		assert(!f.keep_alive);

	out = evbuffer_new();
	if (out == NULL)
		return 0;
	http_write_response_head(out, &resp, &f, f.keep_alive);
	assert(evbuffer_get_length(out) > 0);
	check_written(out);
	evbuffer_free(out);
	return 0;
}
