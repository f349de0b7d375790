/*
 * http_msg — what a forward proxy does to a message between parsing and sending.
 *
 * Pure functions over parsed heads (http_parse.h): decide a message's framing
 * and refuse the ambiguous shapes request smuggling lives on (Content-Length
 * with Transfer-Encoding, differing Content-Lengths, any transfer coding but a
 * lone "chunked"), and write the head that goes on: hop-by-hop fields, the
 * fields named in Connection and Proxy-Authorization removed, Host made equal
 * to the target, Via added, framing written as the gateway will send the body.
 * Error responses are fixed text and never echo request bytes.
 */
#ifndef EGRESSD_GATEWAY_HTTP_MSG_H
#define EGRESSD_GATEWAY_HTTP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/http/http_parse.h"

struct evbuffer;

enum http_body_kind {
	HTTP_BODY_NONE,                 /* no body */
	HTTP_BODY_LENGTH,               /* exactly `length` bytes */
	HTTP_BODY_CHUNKED,              /* chunked transfer coding */
	HTTP_BODY_CLOSE,                /* response delimited by the origin closing */
};

/* What the head says about the message: framing and connection handling. */
struct http_framing {
	enum http_body_kind kind;       /* how the body is delimited */
	uint64_t length;                /* for HTTP_BODY_LENGTH */
	bool keep_alive;                /* the sender wants the connection kept open */
	bool expect_continue;           /* request carries Expect: 100-continue */
	bool has_upgrade;               /* an Upgrade field was present (never honoured) */
};

/*
 * The one classifier of field names for heads and trailers, both directions.
 * Field names compare case-insensitively (unlike methods).  HOP: a framing
 * (Content-Length, Transfer-Encoding) or hop-by-hop field, which the gateway
 * never copies through.  LOOKALIKE: a name that contains '_' and equals a HOP
 * name once every '_' is read as '-' ("Transfer_Encoding", "Content_Length"):
 * CGI and WSGI origins read it as the real field, so a request head carrying
 * one is refused and a response head has it dropped.
 */
enum http_field_kind {
	HTTP_FIELD_PLAIN,               /* end to end */
	HTTP_FIELD_HOP,                 /* framing or hop-by-hop */
	HTTP_FIELD_LOOKALIKE,           /* a HOP name spelled with '_' for '-' */
};

enum http_field_kind http_field_classify(const char *name, size_t len);

/*
 * May a trailer field line line[0..len) ("name:value" without CRLF, as
 * chunked_decode() returns it) be passed on?  No for HOP and LOOKALIKE names
 * and for what RFC 9110 6.5.1 keeps out of trailers (framing, Host,
 * Authorization, Cookie, Set-Cookie, Content-Type/-Encoding/-Range, Range,
 * Expect, conditionals, Cache-Control, Date, Location, Vary, ... also when
 * spelled with '_'); yes for anything else.
 */
bool http_trailer_forwardable(const char *line, size_t len);

/*
 * Framing of a client request: Content-Length (one value, or repeated identical
 * values; digits only, no overflow), Transfer-Encoding exactly "chunked"
 * (case-insensitive; any other coding, list or an HTTP/1.0 request with TE is
 * an error), both together an error, exactly one Host field for HTTP/1.1
 * (HTTP/1.0 may have none), keep-alive from version + Connection tokens, an
 * Expect other than 100-continue an error.  Returns 0 or -1 with *err.
 * Content-Length: 1 to 18 digits, a comma list of identical values allowed;
 * "Content-Length: 0" is HTTP_BODY_LENGTH with length 0 (so it is forwarded),
 * no Content-Length and no Transfer-Encoding is HTTP_BODY_NONE.  "close" and
 * "keep-alive" are honoured in Proxy-Connection as in Connection.  A LOOKALIKE
 * field (http_field_classify()) is an error.
 */
int http_request_framing(const struct http_request *req, struct http_framing *f,
    const char **err);

/*
 * Framing of an origin response to a request with method `method`: HEAD
 * (exactly: methods are case-sensitive, "head" is another method), 1xx,
 * 204 and 304 have no body; otherwise chunked, Content-Length or close-
 * delimited, with the same strictness as requests.  Returns 0 or -1 with *err.
 * Framing fields are validated even where they frame nothing (HEAD, 304).  A
 * 101 is an error (the gateway never forwards Upgrade, so none was asked for);
 * a 2xx with Upgrade is an ordinary response with has_upgrade set.  A close-
 * delimited response has keep_alive false.
 */
int http_response_framing(const struct http_response *resp, const char *method,
    size_t method_len, struct http_framing *f, const char **err);

/*
 * Append to out the request head sent to the origin:
 *   METHOD SP path SP HTTP/1.1 CRLF
 *   Host: host[:port]           (from the target; port only if not 80; [v6] bracketed)
 *   the client's fields minus Host, hop-by-hop ones (Connection, Keep-Alive,
 *   Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Authorization,
 *   Proxy-Authenticate), LOOKALIKE ones, those named in Connection, and Content-Length
 *   Via: <existing values>, 1.1 egressd
 *   Content-Length: N or Transfer-Encoding: chunked, per body
 *   Connection: keep-alive
 * host is the normalized host text (IPv6 without brackets; any host with a
 * ':' is bracketed).  The existing Via fields are merged into the one line;
 * the protocol written is the one received ("1.0 egressd" for HTTP/1.0).
 */
void http_write_request_head(struct evbuffer *out, const struct http_request *req,
    const struct http_target *target, const char *host, const struct http_framing *body);

/*
 * Append to out the response head sent to the client: status line with the
 * origin's status and reason at version HTTP/1.1, the origin's fields minus
 * hop-by-hop and LOOKALIKE ones and those named in Connection, Via added, framing as `body`
 * says (the gateway re-chunks a close-delimited body for an HTTP/1.1 client),
 * and "Connection: keep-alive" or "Connection: close" (always close when body
 * is HTTP_BODY_CLOSE).  When body is HTTP_BODY_NONE the origin's
 * Content-Length is kept (HEAD, 304: it is metadata), except on 1xx and 204.
 * A 1xx head gets neither framing nor Connection lines.
 */
void http_write_response_head(struct evbuffer *out, const struct http_response *resp,
    const struct http_framing *body, bool keep_alive);

/* Reason phrase for the statuses the gateway itself sends. */
const char *http_status_text(int status);

/*
 * Append a complete error response: status line, Content-Type: text/plain,
 * Content-Length, Connection: close, an optional extra header line (e.g.
 * "Proxy-Authenticate: Basic realm=\"...\"", without CRLF, or NULL), and a
 * short fixed body naming the status ("403 Forbidden\n").  An extra_header
 * containing CR or LF is dropped; a status outside 100..599 is sent as 500.
 */
void http_write_error(struct evbuffer *out, int status, const char *extra_header);
/* The same with a line of text (one sentence, at most ~400 bytes) after the status line. */
void http_write_error_text(struct evbuffer *out, int status, const char *extra_header,
    const char *text);

#endif
