/*
 * body — streaming message-body framing as small pure decoders.
 *
 * A body is Content-Length, chunked, or (responses only) delimited by the
 * origin closing.  The chunked decoder is a byte-at-a-time state machine with
 * no recursion and no buffering: the caller feeds whatever arrived and gets back
 * spans of payload inside its own buffer, so a body of any size streams through
 * a bounded amount of memory.  Chunk sizes are hex with overflow checked, chunk
 * extensions and trailer fields are validated and bounded, lines end in CRLF.
 */
#ifndef EGRESSD_GATEWAY_BODY_H
#define EGRESSD_GATEWAY_BODY_H

#include <stddef.h>
#include <stdint.h>

#define CHUNK_LINE_MAX 4096         /* chunk-size line incl. extensions, and one trailer line */
#define CHUNK_TRAILERS_MAX (16 * 1024) /* all trailer lines together */

enum chunked_result {
	CHUNKED_DATA,                   /* payload at in[*off .. *off + *n) */
	CHUNKED_TRAILER,                /* one validated trailer field line at in[*off .. *off + *n) */
	CHUNKED_NEED_MORE,              /* feed more; bytes past *consumed must be fed again */
	CHUNKED_DONE,                   /* the last CRLF of the body was consumed */
	CHUNKED_ERROR,                  /* malformed; *err says why */
};

/* Decoder state, embedded by value in its owner.  Initialise with chunked_init(). */
struct chunked_decoder {
	int state;                      /* internal state-machine position */
	uint64_t remaining;             /* payload bytes left in the current chunk */
	size_t line_len;                /* bytes of the current size/trailer line so far */
	size_t trailers_len;            /* bytes of trailers so far */
	int digits;                     /* hex digits of the current size so far */
	const char *err;                /* why CHUNKED_ERROR was returned */
};

void chunked_init(struct chunked_decoder *d);

/*
 * Feed in[0..len).  Sets *consumed to the bytes it used (always <= len).
 * CHUNKED_DATA and CHUNKED_TRAILER point into the consumed part with *off and
 * *n (a trailer span is the field line without its CRLF; data spans are never
 * empty).  A trailer line is consumed only once it is complete in `in`, so on NEED_MORE
 * the caller keeps the unconsumed tail (less than CHUNK_LINE_MAX bytes; a
 * trailer line longer than that with its CRLF is an error) and feeds it again
 * with the next bytes.  Size lines and payload are consumed as they come.  Call
 * again with the rest until NEED_MORE, DONE or ERROR.  A chunk size is at most
 * 16 hex digits and 2^62; no whitespace is allowed around ';' or '=' of an
 * extension.  After DONE or ERROR every call returns the same result and
 * consumes nothing; the bytes after DONE belong to the next message.
 */
enum chunked_result chunked_decode(struct chunked_decoder *d, const char *in, size_t len,
    size_t *consumed, size_t *off, size_t *n);

#endif
