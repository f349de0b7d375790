/*
 * json — one audit event as one JSON object (pure: event in, string out).
 *
 * The difficulty is hostile strings.  Host names, user names, SNI and URLs
 * come from the network and may hold any bytes; json-c copies bytes above
 * 0x7F unchanged and a C string stops at NUL, so every string is first made
 * valid UTF-8 here (each byte of an invalid sequence becomes U+FFFD) and
 * handed to json-c with its length, which escapes quotes, backslashes and
 * control characters.  Long values are cut at AUDIT_VALUE_MAX bytes (on a
 * character boundary) and marked with a trailing "...[truncated]", so a record
 * stays well under the 8 KiB a syslog message may carry.
 */
#include "audit/audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#define AUDIT_VALUE_MAX 1024        /* bytes of one string value before truncation */
#define TRUNCATED_MARK "...[truncated]"

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

/* A json string of s made valid UTF-8 and bounded. */
static struct json_object *
audit_string(const char *s)
{
	static const char replacement[] = "\xEF\xBF\xBD";
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), i = 0, o = 0, n;
	struct json_object *obj;
	char *out;
	int truncated = 0;

	out = malloc(AUDIT_VALUE_MAX + sizeof(TRUNCATED_MARK) + 4);
	if (out == NULL)
		return NULL;
	while (i < len) {
		n = utf8_seq(p + i, len - i);
		if (o + (n == 0 ? 3 : n) > AUDIT_VALUE_MAX) {
			truncated = 1;
			break;
		}
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
		memcpy(out + o, TRUNCATED_MARK, sizeof(TRUNCATED_MARK) - 1);
		o += sizeof(TRUNCATED_MARK) - 1;
	}
	obj = json_object_new_string_len(out, (int)o);
	free(out);
	return obj;
}

static void
add_string(struct json_object *o, const char *key, const char *value)
{
	json_object_object_add(o, key, value == NULL ? NULL : audit_string(value));
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
audit_encode(const struct audit_event *ev)
{
	struct json_object *o;
	char ts[96];
	char *out;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	format_ts(ev->end_ms, ts, sizeof(ts));
	add_string(o, "ts", ts);
	add_string(o, "event", ev->event);
	add_string(o, "id", ev->id);
	add_string(o, "client_ip", ev->client_ip);
	add_int(o, "client_port", ev->client_port);
	add_string(o, "user", ev->user);
	add_string(o, "method", ev->method);
	add_string(o, "host", ev->host);
	add_int(o, "port", ev->port);
	add_string(o, "url", ev->url);
	add_string(o, "dst_ip", ev->dst_ip);
	add_string(o, "sni", ev->sni);
	add_string(o, "decision", ev->decision);
	add_string(o, "reason", ev->reason);
	add_string(o, "rule", ev->rule);
	add_int(o, "status", ev->status);
	add_int(o, "bytes_up", ev->bytes_up);
	add_int(o, "bytes_down", ev->bytes_down);
	add_int(o, "duration_ms", ev->duration_ms);
	add_string(o, "close", ev->close);
	if (ev->lost >= 0)
		add_int(o, "lost", ev->lost);
	if (ev->message != NULL)
		add_string(o, "message", ev->message);
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}
