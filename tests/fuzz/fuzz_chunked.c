/*
 * fuzz_chunked — the chunked decoder must not care how its input is cut.
 *
 * The first byte of the input chooses a split point; the rest is the body.
 * It is decoded three ways: whole, in two pieces at the split, and one byte
 * at a time, each by a caller that keeps the unconsumed tail as body.h says.
 * All three must agree on the result, the payload, the trailer lines and
 * where the body ended, and every span must lie in what was fed.  Each
 * trailer line the gateway would forward must have a plain field name.
 */

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http/body.h"
#include "gateway/http/http_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
	enum chunked_result result;
	size_t used;
	size_t payload_len;
	size_t trailers_len;
	char *payload;
	char *trailers;
};

/*
 * A trailer line the gateway would pass on has a plain field name: never a
 * framing, hop-by-hop or look-alike one.
 */
static void
check_trailer(const char *line, size_t n)
{
	const char *colon = memchr(line, ':', n);

	assert(colon != NULL && colon > line);
	if (http_trailer_forwardable(line, n))
		assert(http_field_classify(line, (size_t)(colon - line)) == HTTP_FIELD_PLAIN);
}

/* Feed in[0..len) in pieces: first `first` bytes, then `step` at a time. */
static void
decode(const char *in, size_t len, size_t first, size_t step, struct outcome *o)
{
	struct chunked_decoder d;
	size_t have = 0, fed = 0, pos, add, c, off, n;
	bool started = false;
	enum chunked_result r;
	char *buf;

	memset(o, 0, sizeof(*o));
	buf = malloc(len + 1);
	o->payload = malloc(len + 1);
	o->trailers = malloc(len + 1);
	assert(buf != NULL && o->payload != NULL && o->trailers != NULL);
	chunked_init(&d);
	for (;;) {
		add = started ? step : first;
		started = true;
		if (add > len - fed)
			add = len - fed;
		memcpy(buf + have, in + fed, add);
		have += add;
		fed += add;
		pos = 0;
		for (;;) {
			r = chunked_decode(&d, buf + pos, have - pos, &c, &off, &n);
			assert(c <= have - pos);
			if (r == CHUNKED_DATA || r == CHUNKED_TRAILER) {
				assert(n > 0 || r == CHUNKED_TRAILER);
				assert(off <= c && n <= c - off);
				if (r == CHUNKED_DATA) {
					memcpy(o->payload + o->payload_len, buf + pos + off, n);
					o->payload_len += n;
				} else {
					check_trailer(buf + pos + off, n);
					assert(o->trailers_len + n <= len);
					memcpy(o->trailers + o->trailers_len, buf + pos + off, n);
					o->trailers_len += n;
				}
				pos += c;
				continue;
			}
			pos += c;
			if (r == CHUNKED_NEED_MORE)
				break;
			o->result = r;
			o->used = fed - (have - pos);
			free(buf);
			return;
		}
		memmove(buf, buf + pos, have - pos);
		have -= pos;
		assert(have < CHUNK_LINE_MAX);
		if (fed == len) {
			o->result = CHUNKED_NEED_MORE;
			free(buf);
			return;
		}
	}
}

static void
same(const struct outcome *a, const struct outcome *b)
{
	assert(a->result == b->result);
	assert(a->payload_len == b->payload_len);
	assert(memcmp(a->payload, b->payload, a->payload_len) == 0);
	assert(a->trailers_len == b->trailers_len);
	assert(memcmp(a->trailers, b->trailers, a->trailers_len) == 0);
	if (a->result == CHUNKED_DONE)
		assert(a->used == b->used);
}

static void
release(struct outcome *o)
{
	free(o->payload);
	free(o->trailers);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome whole, split, bytes;
	const char *in;
	size_t len, cut;

	if (size < 1)
		return 0;
	in = (const char *)data + 1;
	len = size - 1;
	cut = len == 0 ? 0 : (size_t)data[0] * 131 % (len + 1);

	decode(in, len, len, len, &whole);
	decode(in, len, cut, len, &split);
	decode(in, len, 1, 1, &bytes);
	same(&whole, &split);
	same(&whole, &bytes);
	if (whole.result == CHUNKED_DONE)
		assert(whole.used <= len && whole.payload_len < whole.used);
	release(&whole);
	release(&split);
	release(&bytes);
	return 0;
}
