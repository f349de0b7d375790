/*
 * test_body — the chunked decoder, driven the way a connection drives it.
 *
 * run() plays the caller: it feeds the input in pieces of `step` bytes,
 * keeps the unconsumed tail on NEED_MORE, and collects payload and trailer
 * lines.  Every case runs whole and one byte at a time, because the state
 * machine must give the same answer however the bytes are cut.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gateway/http/body.h"

#define R(s) s, sizeof(s) - 1

struct run {
	enum chunked_result result;
	char *payload;
	size_t payload_len;
	char *trailers;                 /* trailer lines, each followed by '\n' */
	size_t trailers_len;
	size_t used;                    /* input bytes up to the end of the body */
	const char *err;
};

static void
run(const char *in, size_t len, size_t step, struct run *out)
{
	struct chunked_decoder d;
	size_t have = 0, fed = 0, pos, add, c, off, n;
	enum chunked_result r;
	char *buf;

	memset(out, 0, sizeof(*out));
	buf = malloc(len + 1);
	out->payload = malloc(len + 1);
	out->trailers = malloc(len + 1);
	assert_non_null(buf);
	assert_non_null(out->payload);
	assert_non_null(out->trailers);
	chunked_init(&d);
	for (;;) {
		add = len - fed < step ? len - fed : step;
		memcpy(buf + have, in + fed, add);
		have += add;
		fed += add;
		pos = 0;
		for (;;) {
			r = chunked_decode(&d, buf + pos, have - pos, &c, &off, &n);
			assert_true(c <= have - pos);
			if (r == CHUNKED_DATA || r == CHUNKED_TRAILER) {
				assert_true(off + n <= c);
				if (r == CHUNKED_DATA) {
					assert_true(n > 0);
					memcpy(out->payload + out->payload_len, buf + pos + off, n);
					out->payload_len += n;
				} else {
					memcpy(out->trailers + out->trailers_len, buf + pos + off, n);
					out->trailers_len += n;
					out->trailers[out->trailers_len++] = '\n';
				}
				pos += c;
				continue;
			}
			pos += c;
			if (r == CHUNKED_NEED_MORE)
				break;
			out->result = r;
			out->used = fed - (have - pos);
			out->err = d.err;
			if (r == CHUNKED_ERROR)
				assert_non_null(d.err);
			free(buf);
			return;
		}
		memmove(buf, buf + pos, have - pos);
		have -= pos;
		if (fed == len) {
			out->result = CHUNKED_NEED_MORE;
			free(buf);
			return;
		}
	}
}

static void
run_free(struct run *r)
{
	free(r->payload);
	free(r->trailers);
}

struct body_case {
	const char *name;
	const char *in;
	size_t len;
	enum chunked_result result;
	const char *payload;            /* for DONE */
	const char *trailers;           /* for DONE */
	size_t used;                    /* for DONE */
};

static const struct body_case cases[] = {
	{ "one chunk", R("5\r\nhello\r\n0\r\n\r\n"), CHUNKED_DONE, "hello", "", 15 },
	{ "two chunks", R("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), CHUNKED_DONE, "hello world", "", 26 },
	{ "empty body", R("0\r\n\r\n"), CHUNKED_DONE, "", "", 5 },
	{ "next message kept", R("0\r\n\r\nGET / HTTP/1.1\r\n"), CHUNKED_DONE, "", "", 5 },
	{ "hex upper and lower", R("a\r\n0123456789\r\nB\r\n0123456789a\r\n0\r\n\r\n"),
	    CHUNKED_DONE, "01234567890123456789a", "", 36 },
	{ "leading zeros", R("0005\r\nhello\r\n000\r\n\r\n"), CHUNKED_DONE, "hello", "", 20 },
	{ "extension", R("5;name\r\nhello\r\n0;last\r\n\r\n"), CHUNKED_DONE, "hello", "", 25 },
	{ "extension value token", R("5;a=b;c=d\r\nhello\r\n0\r\n\r\n"), CHUNKED_DONE, "hello", "", 23 },
	{ "extension quoted", R("5;a=\"x y;\\\"z\"\r\nhello\r\n0\r\n\r\n"), CHUNKED_DONE, "hello", "", 27 },
	{ "trailers", R("5\r\nhello\r\n0\r\nX-Sum: abc\r\nX-Other:\t1 \r\n\r\n"),
	    CHUNKED_DONE, "hello", "X-Sum: abc\nX-Other:\t1 \n", 40 },
	{ "CRLF in payload", R("4\r\n\r\n\r\n\r\n0\r\n\r\n"), CHUNKED_DONE, "\r\n\r\n", "", 14 },
	{ "16 hex digits", R("0000000000000001\r\nx\r\n0\r\n\r\n"), CHUNKED_DONE, "x", "", 26 },

	{ "incomplete data", R("5\r\nhel"), CHUNKED_NEED_MORE, NULL, NULL, 0 },
	{ "incomplete end", R("0\r\n\r"), CHUNKED_NEED_MORE, NULL, NULL, 0 },
	{ "incomplete trailer", R("0\r\nX-A: b"), CHUNKED_NEED_MORE, NULL, NULL, 0 },
	{ "huge size waits", R("3fffffffffffffff\r\nabc"), CHUNKED_NEED_MORE, NULL, NULL, 0 },

	{ "17 hex digits", R("00000000000000001\r\nx\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "over 2^62", R("4000000000000001\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "overflow hex", R("ffffffffffffffffff\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "bad hex", R("5g\r\nhello\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "0x prefix", R("0x5\r\nhello\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "negative", R("-5\r\nhello\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "plus", R("+5\r\nhello\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "empty size", R("\r\nhello\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "space before size", R(" 5\r\nhello\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "space after size", R("5 \r\nhello\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "space before ext", R("5 ;a\r\nhello\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "empty ext name", R("5;\r\nhello\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "empty ext value", R("5;a=\r\nhello\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "unterminated quote", R("5;a=\"x\r\nhello\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "junk after quote", R("5;a=\"x\"y\r\nhello\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "bare LF in ext", R("5;a\nhello\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "bare LF size", R("5\nhello\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "bare CR size", R("5\rhello\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "missing CRLF after data", R("5\r\nhelloX\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "LF only after data", R("5\r\nhello\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "CR only after data", R("5\r\nhello\r0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "size too short", R("4\r\nhello\r\n0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "bare LF end", R("0\r\n\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "bare CR end", R("0\r\n\rX"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "trailer obs-fold", R("0\r\nX-A: b\r\n c\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "trailer space before colon", R("0\r\nX-A : b\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "trailer no colon", R("0\r\nX-A b\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "trailer empty name", R("0\r\n: b\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "trailer NUL", R("0\r\nX-A: \0\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "trailer bare LF", R("0\r\nX-A: b\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
	{ "trailer bare CR", R("0\r\nX-A: b\rc\r\n\r\n"), CHUNKED_ERROR, NULL, NULL, 0 },
};

static void
check_case(const struct body_case *c, size_t step)
{
	struct run r;

	run(c->in, c->len, step, &r);
	if (r.result != c->result)
		fail_msg("%s (step %zu): %d, expected %d (%s)", c->name, step, r.result,
		    c->result, r.err ? r.err : "-");
	if (c->result == CHUNKED_DONE) {
		if (r.payload_len != strlen(c->payload) ||
		    memcmp(r.payload, c->payload, r.payload_len) != 0)
			fail_msg("%s (step %zu): payload %.*s", c->name, step,
			    (int)r.payload_len, r.payload);
		if (r.trailers_len != strlen(c->trailers) ||
		    memcmp(r.trailers, c->trailers, r.trailers_len) != 0)
			fail_msg("%s (step %zu): trailers %.*s", c->name, step,
			    (int)r.trailers_len, r.trailers);
		if (r.used != c->used)
			fail_msg("%s (step %zu): used %zu, expected %zu", c->name, step,
			    r.used, c->used);
	}
	run_free(&r);
}

static void
test_table_whole(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i], cases[i].len + 1);
}

static void
test_table_bytewise(void **state)
{
	size_t i, step;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (step = 1; step <= 7; step++)
			check_case(&cases[i], step);
}

/* Payload comes back as a span of the caller's buffer, never a copy. */
static void
test_data_in_place(void **state)
{
	static const char in[] = "5\r\nhello\r\n0\r\n\r\n";
	struct chunked_decoder d;
	size_t c, off, n;

	(void)state;
	chunked_init(&d);
	assert_int_equal(chunked_decode(&d, in, sizeof(in) - 1, &c, &off, &n), CHUNKED_DATA);
	assert_int_equal(off, 3);
	assert_int_equal(n, 5);
	assert_int_equal(c, 8);
	assert_int_equal(chunked_decode(&d, in + 8, sizeof(in) - 9, &c, &off, &n),
	    CHUNKED_DONE);
	assert_int_equal(c, 7);
	/* DONE is sticky and consumes nothing. */
	assert_int_equal(chunked_decode(&d, "x", 1, &c, &off, &n), CHUNKED_DONE);
	assert_int_equal(c, 0);
}

static void
test_error_sticky(void **state)
{
	struct chunked_decoder d;
	size_t c, off, n;

	(void)state;
	chunked_init(&d);
	assert_int_equal(chunked_decode(&d, "z", 1, &c, &off, &n), CHUNKED_ERROR);
	assert_non_null(d.err);
	assert_int_equal(chunked_decode(&d, "0\r\n\r\n", 5, &c, &off, &n), CHUNKED_ERROR);
	assert_int_equal(c, 0);
}

/* A large chunk streams through in pieces, each returned as soon as it arrives. */
static void
test_large_chunk(void **state)
{
	struct chunked_decoder d;
	size_t c, off, n, total = 0;
	char piece[1000];

	(void)state;
	memset(piece, 'x', sizeof(piece));
	chunked_init(&d);
	assert_int_equal(chunked_decode(&d, "100000\r\n", 8, &c, &off, &n), CHUNKED_NEED_MORE);
	assert_int_equal(c, 8);
	while (total < 0x100000) {
		size_t len = 0x100000 - total < sizeof(piece) ? 0x100000 - total : sizeof(piece);

		assert_int_equal(chunked_decode(&d, piece, len, &c, &off, &n), CHUNKED_DATA);
		assert_int_equal(n, len);
		total += n;
	}
	assert_int_equal(chunked_decode(&d, "\r\n0\r\n\r\n", 7, &c, &off, &n), CHUNKED_DONE);
}

static char *
build_trailers(size_t line_len, size_t nlines, size_t *len)
{
	size_t i, cap = 16 + nlines * (line_len + 2);
	char *b = malloc(cap);

	assert_non_null(b);
	memcpy(b, "0\r\n", 3);
	*len = 3;
	for (i = 0; i < nlines; i++) {
		memcpy(b + *len, "X:", 2);
		memset(b + *len + 2, 'v', line_len - 2);
		memcpy(b + *len + line_len, "\r\n", 2);
		*len += line_len + 2;
	}
	memcpy(b + *len, "\r\n", 2);
	*len += 2;
	return b;
}

static void
test_trailer_bounds(void **state)
{
	struct run r;
	size_t len;
	char *b;

	(void)state;
	/* One line of exactly CHUNK_LINE_MAX with its CRLF: fine, whole and bytewise. */
	b = build_trailers(CHUNK_LINE_MAX - 2, 1, &len);
	run(b, len, len, &r);
	assert_int_equal(r.result, CHUNKED_DONE);
	run_free(&r);
	run(b, len, 1, &r);
	assert_int_equal(r.result, CHUNKED_DONE);
	run_free(&r);
	free(b);

	/* One byte longer: an error, whatever the cut. */
	b = build_trailers(CHUNK_LINE_MAX - 1, 1, &len);
	run(b, len, len, &r);
	assert_int_equal(r.result, CHUNKED_ERROR);
	run_free(&r);
	run(b, len, 1, &r);
	assert_int_equal(r.result, CHUNKED_ERROR);
	run_free(&r);
	free(b);

	/* A line that never ends is refused once the tail reaches the bound. */
	b = build_trailers(3 * CHUNK_LINE_MAX, 1, &len);
	run(b, 3 + CHUNK_LINE_MAX + 10, 100, &r);
	assert_int_equal(r.result, CHUNKED_ERROR);
	run_free(&r);
	free(b);

	/* All trailers together are bounded by CHUNK_TRAILERS_MAX. */
	b = build_trailers(1000, CHUNK_TRAILERS_MAX / 1002, &len);
	run(b, len, 333, &r);
	assert_int_equal(r.result, CHUNKED_DONE);
	run_free(&r);
	free(b);
	b = build_trailers(1000, CHUNK_TRAILERS_MAX / 1002 + 1, &len);
	run(b, len, 333, &r);
	assert_int_equal(r.result, CHUNKED_ERROR);
	run_free(&r);
	free(b);
}

static void
test_size_line_bound(void **state)
{
	struct run r;
	char *b;
	size_t len;

	(void)state;
	/* "5;a=<value>\r\n" of exactly CHUNK_LINE_MAX bytes is fine; one more is not. */
	b = malloc(CHUNK_LINE_MAX + 64);
	assert_non_null(b);
	memcpy(b, "5;a=", 4);
	memset(b + 4, 'v', CHUNK_LINE_MAX - 6);
	memcpy(b + CHUNK_LINE_MAX - 2, "\r\nhello\r\n0\r\n\r\n", 15);
	len = CHUNK_LINE_MAX + 13;
	run(b, len, 1, &r);
	assert_int_equal(r.result, CHUNKED_DONE);
	run_free(&r);
	memcpy(b, "5;a=", 4);
	memset(b + 4, 'v', CHUNK_LINE_MAX - 5);
	memcpy(b + CHUNK_LINE_MAX - 1, "\r\nhello\r\n0\r\n\r\n", 15);
	run(b, len + 1, len + 1, &r);
	assert_int_equal(r.result, CHUNKED_ERROR);
	run_free(&r);
	free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_whole),
		cmocka_unit_test(test_table_bytewise),
		cmocka_unit_test(test_data_in_place),
		cmocka_unit_test(test_error_sticky),
		cmocka_unit_test(test_large_chunk),
		cmocka_unit_test(test_trailer_bounds),
		cmocka_unit_test(test_size_line_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
