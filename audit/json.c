/*
 * json — one audit event as one JSON object (pure: event in, string out).
 *
 * The difficulty is hostile strings and the size bound.  Host names, user
 * names, SNI and URLs come from the network and may hold any bytes; json-c
 * copies bytes above 0x7F unchanged and a C string stops at NUL, so every
 * string is first made valid UTF-8 here and handed to json-c with its length,
 * which escapes quotes, backslashes and control characters.  The rule for
 * invalid UTF-8 is one U+FFFD per byte that does not start a valid sequence
 * (stray continuation bytes, overlong forms, surrogates, code points above
 * U+10FFFF, sequences cut short), after which decoding resumes at the next
 * byte; valid sequences are kept as they are.
 *
 * A record must fit one syslog message (rsyslog drops or cuts what exceeds
 * its 8 KiB default), so a value is cut on a character boundary once its
 * JSON form (escapes counted) would pass the per-value limit, and marked
 * with "...[truncated]"; if the whole record is still too long, it is
 * encoded again with a smaller limit, which always fits: 14 variable strings
 * at 256 bytes plus the fixed keys and numbers are far below the bound.
 */
#include "audit/audit.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

/* The smallest limit audit_encode() falls back to; see the top comment. */
#define AUDIT_VALUE_MIN 256

/* Length of the valid UTF-8 sequence at s[0..len), or 0 if invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t len)
{
	size_t n, i;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		n = 2, cp = s[0] & 0x1F;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		n = 3, cp = s[0] & 0x0F;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	/* overlong forms, surrogates, beyond U+10FFFF */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

/* Bytes json-c writes for one byte c < 0x80 (JSON_C_TO_STRING_NOSLASHESCAPE). */
static size_t
json_cost(unsigned char c)
{
	switch (c) {
	case '\b': case '\f': case '\n': case '\r': case '\t': case '"': case '\\':
		return 2;
	default:
		return c < 0x20 ? 6 : 1;
	}
}

/*
 * A json string of s made valid UTF-8 (see the top comment) and cut so that
 * its escaped form stays within limit bytes, plus the marker if cut.
 */
static struct json_object *
audit_string(const char *s, size_t limit)
{
	static const char replacement[] = "\xEF\xBF\xBD";
	const unsigned char *p = (const unsigned char *)s;
	char out[AUDIT_VALUE_MAX + sizeof(AUDIT_TRUNCATED_MARK) + 8];
	size_t len = strlen(s), i = 0, o = 0, cost = 0, n, c;
	bool truncated = false;

	if (limit > AUDIT_VALUE_MAX)
		limit = AUDIT_VALUE_MAX;
	while (i < len) {
		n = utf8_seq(p + i, len - i);
		c = n == 0 ? 3 : n == 1 ? json_cost(p[i]) : n;
		if (cost + c > limit) {
			truncated = true;
			break;
		}
		cost += c;
		if (n == 0) {
			memcpy(out + o, replacement, 3);
			o += 3;
			i++;
		} else {
			memcpy(out + o, p + i, n);
			o += n;
			i += n;
		}
	}
	if (truncated) {
		memcpy(out + o, AUDIT_TRUNCATED_MARK, sizeof(AUDIT_TRUNCATED_MARK) - 1);
		o += sizeof(AUDIT_TRUNCATED_MARK) - 1;
	}
	return json_object_new_string_len(out, (int)o);
}

static void
add_string(struct json_object *o, const char *key, const char *value, size_t limit)
{
	json_object_object_add(o, key, value == NULL ? NULL : audit_string(value, limit));
}

/*
 * The request-target of a refused request, as the client sent it: raw bytes
 * that may hold anything (NUL included), so the first AUDIT_TARGET_MAX bytes
 * are kept and escaped like every other attacker-supplied string.
 */
static void
add_target(struct json_object *o, const char *target, size_t len, size_t limit)
{
	char buf[AUDIT_TARGET_MAX + 1];
	size_t i;

	if (target == NULL) {
		json_object_object_add(o, "target", NULL);
		return;
	}
	if (len > AUDIT_TARGET_MAX)
		len = AUDIT_TARGET_MAX;
	/* A NUL would end the string early: it becomes 0xff, which (like
	 * every byte that starts no valid UTF-8 sequence) is written as U+FFFD. */
	for (i = 0; i < len; i++)
		buf[i] = target[i] != '\0' ? target[i] : (char)0xff;
	buf[len] = '\0';
	json_object_object_add(o, "target", audit_string(buf, limit));
}

static void
add_int(struct json_object *o, const char *key, int64_t value)
{
	json_object_object_add(o, key, value < 0 ? NULL : json_object_new_int64(value));
}

static void
format_ts(int64_t end_ms, char *buf, size_t bufsz)
{
	struct timespec ts;
	struct tm tm;
	time_t sec;

	if (end_ms <= 0) {
		clock_gettime(CLOCK_REALTIME, &ts);
		end_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	sec = (time_t)(end_ms / 1000);
	gmtime_r(&sec, &tm);
	snprintf(buf, bufsz, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    (int)(end_ms % 1000));
}

char *
audit_encode_limit(const struct audit_event *ev, size_t limit)
{
	struct json_object *o;
	char ts[96];
	char *out;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	format_ts(ev->end_ms, ts, sizeof(ts));
	add_string(o, "ts", ts, limit);
	add_string(o, "event", ev->event, limit);
	add_string(o, "id", ev->id, limit);
	add_string(o, "client_ip", ev->client_ip, limit);
	add_int(o, "client_port", ev->client_port);
	add_string(o, "user", ev->user, limit);
	add_string(o, "method", ev->method, limit);
	add_string(o, "host", ev->host, limit);
	add_int(o, "port", ev->port);
	add_string(o, "url", ev->url, limit);
	add_string(o, "dst_ip", ev->dst_ip, limit);
	add_string(o, "sni", ev->sni, limit);
	add_string(o, "decision", ev->decision, limit);
	add_string(o, "reason", ev->reason, limit);
	add_string(o, "rule", ev->rule, limit);
	add_int(o, "status", ev->status);
	add_int(o, "bytes_up", ev->bytes_up);
	add_int(o, "bytes_down", ev->bytes_down);
	add_int(o, "duration_ms", ev->duration_ms);
	add_string(o, "close", ev->close, limit);
	add_target(o, ev->target, ev->target_len, limit);
	add_string(o, "report", ev->report, limit);
	json_object_object_add(o, "client_tls", ev->client_tls == AUDIT_BOOL_NULL ? NULL :
	    json_object_new_boolean(ev->client_tls == AUDIT_BOOL_TRUE));
	if (ev->lost >= 0)
		add_int(o, "lost", ev->lost);
	if (ev->message != NULL)
		add_string(o, "message", ev->message, limit);
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}

char *
audit_encode(const struct audit_event *ev)
{
	size_t limit;
	char *out;

	/* Almost every record fits at the first try; halving converges fast. */
	for (limit = AUDIT_VALUE_MAX;; limit /= 2) {
		if ((out = audit_encode_limit(ev, limit)) == NULL)
			return NULL;
		if (strlen(out) <= AUDIT_RECORD_MAX || limit <= AUDIT_VALUE_MIN)
			break;
		free(out);
	}
	assert(strlen(out) <= AUDIT_RECORD_MAX && "AUDIT_VALUE_MIN leaves room for every field");
	return out;
}
