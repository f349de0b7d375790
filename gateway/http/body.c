/*
 * body — the chunked transfer-coding decoder.
 *
 *	chunked-body = *chunk last-chunk trailer-section CRLF
 *	chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *	last-chunk   = 1*("0") [ chunk-ext ] CRLF
 *	chunk-ext    = *( ";" ext-name [ "=" ( token / quoted-string ) ] )
 *	trailer-section = *( field-line CRLF )
 *
 * A chunk size is the one number an attacker controls that decides where the
 * next message starts, so it is read one byte at a time by a flat state
 * machine: hex only, at most CHUNK_SIZE_DIGITS digits and CHUNK_SIZE_MAX in
 * value (checked before the multiply, so it cannot wrap), and the CRLF after
 * each chunk's data is checked, never assumed.  Leniencies other parsers have
 * been caught with (bare LF in a size line or an extension, whitespace around
 * ';', a size with "0x" or a sign, a missing CRLF after data) are all errors.
 *
 * Payload is never copied: CHUNKED_DATA returns a span of the caller's buffer.
 * Trailer lines are returned whole (so they are validated as one field line),
 * which is why they alone are consumed only once complete.
 */

#include "gateway/http/body.h"

#include <string.h>

#include "gateway/http/http_parse.h"

#define CHUNK_SIZE_DIGITS 16
#define CHUNK_SIZE_MAX ((uint64_t)1 << 62)

/* The states of a size line come first: chunked_decode() bounds them by order. */
enum chunked_state {
	CH_SIZE_FIRST,                  /* first hex digit of a chunk size */
	CH_SIZE,                        /* more hex digits, ';' or CR */
	CH_EXT_NAME_FIRST,              /* after ';': first tchar of an extension name */
	CH_EXT_NAME,                    /* tchars, '=', ';' or CR */
	CH_EXT_VALUE_FIRST,             /* after '=': tchar or '"' */
	CH_EXT_TOKEN,                   /* tchars, ';' or CR */
	CH_EXT_QUOTED,                  /* inside a quoted-string */
	CH_EXT_QUOTED_ESC,              /* after a backslash in a quoted-string */
	CH_EXT_QUOTED_END,              /* after the closing '"': ';' or CR */
	CH_SIZE_LF,                     /* after the CR of a size line */
	CH_DATA,                        /* chunk-data, d->remaining bytes left */
	CH_DATA_CR,                     /* the CR after chunk-data */
	CH_DATA_LF,                     /* the LF after chunk-data */
	CH_TRAILER,                     /* start of a trailer line, or the final CRLF */
	CH_END_LF,                      /* the LF of the final CRLF */
	CH_DONE,
	CH_ERROR,
};

void
chunked_init(struct chunked_decoder *d)
{
	memset(d, 0, sizeof(*d));
	d->state = CH_SIZE_FIRST;
}

static int
chunked_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* qdtext or the byte after a backslash (RFC 9110 5.6.4), without '"' and '\\'. */
static bool
chunked_qdtext(unsigned char c)
{
	return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
	    (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

static enum chunked_result
chunked_fail(struct chunked_decoder *d, const char *why)
{
	d->state = CH_ERROR;
	d->err = why;
	return CHUNKED_ERROR;
}

/*
 * One trailer field line at in[0..len): name ":" value CRLF.  Returns the
 * length of the line without its CRLF through *line, and 1 when complete,
 * 0 when the CRLF has not arrived yet, -1 (with *why) when malformed.
 */
static int
chunked_trailer_line(const char *in, size_t len, size_t *line, const char **why)
{
	size_t p = 0;
	unsigned char c;

	while (p < len && http_is_tchar((unsigned char)in[p]))
		p++;
	if (p == len)
		return 0;
	if (p == 0 || in[p] != ':') {
		*why = p == 0 ? "malformed trailer field name" : "invalid character in trailer name";
		return -1;
	}
	for (p++; p < len; p++) {
		c = in[p];
		if (c == '\r')
			break;
		if (!http_is_field_vchar(c)) {
			*why = c == '\n' ? "bare LF in trailer" : "control character in trailer";
			return -1;
		}
	}
	if (p + 1 >= len)
		return 0;
	if (in[p + 1] != '\n') {
		*why = "bare CR in trailer";
		return -1;
	}
	*line = p;
	return 1;
}

enum chunked_result
chunked_decode(struct chunked_decoder *d, const char *in, size_t len,
    size_t *consumed, size_t *off, size_t *n)
{
	const char *why = NULL;
	size_t p = 0, line, take;
	unsigned char c;
	int v, r;

	*consumed = 0;
	*off = 0;
	*n = 0;
	if (d->state == CH_ERROR)
		return CHUNKED_ERROR;
	if (d->state == CH_DONE)
		return CHUNKED_DONE;

	while (p < len) {
		c = in[p];

		/*
		 * Size lines (with their extensions and CRLF) are bounded as a
		 * whole, and no byte of one before its CR may be an LF.
		 */
		if (d->state <= CH_SIZE_LF && ++d->line_len > CHUNK_LINE_MAX)
			return chunked_fail(d, "chunk size line too long");
		if (d->state < CH_SIZE_LF && c == '\n')
			return chunked_fail(d, "bare LF in chunk size line");

		switch (d->state) {
		case CH_SIZE_FIRST:
		case CH_SIZE:
			if ((v = chunked_hex(c)) != -1) {
				if (++d->digits > CHUNK_SIZE_DIGITS ||
				    d->remaining > CHUNK_SIZE_MAX >> 4)
					return chunked_fail(d, "chunk size too large");
				d->remaining = d->remaining << 4 | (uint64_t)v;
				if (d->remaining > CHUNK_SIZE_MAX)
					return chunked_fail(d, "chunk size too large");
				d->state = CH_SIZE;
			} else if (d->state == CH_SIZE_FIRST)
				return chunked_fail(d, "invalid chunk size");
			else if (c == ';')
				d->state = CH_EXT_NAME_FIRST;
			else if (c == '\r')
				d->state = CH_SIZE_LF;
			else
				return chunked_fail(d, "invalid chunk size");
			break;
		case CH_EXT_NAME_FIRST:
			if (!http_is_tchar(c))
				return chunked_fail(d, "invalid chunk extension");
			d->state = CH_EXT_NAME;
			break;
		case CH_EXT_NAME:
		case CH_EXT_TOKEN:
		case CH_EXT_QUOTED_END:
			if (c == ';')
				d->state = CH_EXT_NAME_FIRST;
			else if (c == '\r')
				d->state = CH_SIZE_LF;
			else if (c == '=' && d->state == CH_EXT_NAME)
				d->state = CH_EXT_VALUE_FIRST;
			else if (!http_is_tchar(c) || d->state == CH_EXT_QUOTED_END)
				return chunked_fail(d, "invalid chunk extension");
			break;
		case CH_EXT_VALUE_FIRST:
			if (c == '"')
				d->state = CH_EXT_QUOTED;
			else if (http_is_tchar(c))
				d->state = CH_EXT_TOKEN;
			else
				return chunked_fail(d, "invalid chunk extension");
			break;
		case CH_EXT_QUOTED:
			if (c == '"')
				d->state = CH_EXT_QUOTED_END;
			else if (c == '\\')
				d->state = CH_EXT_QUOTED_ESC;
			else if (!chunked_qdtext(c))
				return chunked_fail(d, "invalid chunk extension");
			break;
		case CH_EXT_QUOTED_ESC:
			if (!chunked_qdtext(c) && c != '"' && c != '\\')
				return chunked_fail(d, "invalid chunk extension");
			d->state = CH_EXT_QUOTED;
			break;
		case CH_SIZE_LF:
			if (c != '\n')
				return chunked_fail(d, "bare CR in chunk size line");
			d->line_len = 0;
			d->digits = 0;
			d->state = d->remaining == 0 ? CH_TRAILER : CH_DATA;
			break;
		case CH_DATA:
			take = len - p;
			if (take > d->remaining)
				take = (size_t)d->remaining;
			d->remaining -= take;
			if (d->remaining == 0)
				d->state = CH_DATA_CR;
			*off = p;
			*n = take;
			*consumed = p + take;
			return CHUNKED_DATA;
		case CH_DATA_CR:
			if (c != '\r')
				return chunked_fail(d, "missing CRLF after chunk data");
			d->state = CH_DATA_LF;
			break;
		case CH_DATA_LF:
			if (c != '\n')
				return chunked_fail(d, "missing CRLF after chunk data");
			d->state = CH_SIZE_FIRST;
			break;
		case CH_TRAILER:
			if (c == '\r') {
				d->state = CH_END_LF;
				break;
			}
			r = chunked_trailer_line(in + p, len - p, &line, &why);
			if (r == -1)
				return chunked_fail(d, why);
			if (r == 0) {
				/* The line with its CRLF must fit CHUNK_LINE_MAX. */
				if (len - p >= CHUNK_LINE_MAX)
					return chunked_fail(d, "trailer line too long");
				*consumed = p;
				return CHUNKED_NEED_MORE;
			}
			if (line + 2 > CHUNK_LINE_MAX)
				return chunked_fail(d, "trailer line too long");
			d->trailers_len += line + 2;
			if (d->trailers_len > CHUNK_TRAILERS_MAX)
				return chunked_fail(d, "trailers too large");
			*off = p;
			*n = line;
			*consumed = p + line + 2;
			return CHUNKED_TRAILER;
		case CH_END_LF:
			if (c != '\n')
				return chunked_fail(d, "bare CR after trailers");
			d->state = CH_DONE;
			*consumed = p + 1;
			return CHUNKED_DONE;
		default:
			return chunked_fail(d, "internal state error");
		}
		p++;
	}
	*consumed = p;
	return CHUNKED_NEED_MORE;
}
