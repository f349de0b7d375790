/*
 * fuzz_audit_json — audit_encode() against json-c itself.
 *
 * audit/json.c writes records straight into a buffer instead of building a
 * json-c object per record.  Whatever the field values (any bytes, any
 * length), the record must be one JSON object json-c parses, that json-c
 * prints back byte for byte with the flags the records used to be made with
 * (PLAIN | NOSLASHESCAPE: the record is in json-c's canonical form, so it is
 * what the json-c encoder wrote), with every contract field present, and
 * within AUDIT_RECORD_MAX; the record is valid UTF-8, and a value that was
 * valid UTF-8 and short reads back as it was given.
 *
 * Input: a control byte (which fields are NULL, the numbers' signs), then
 * the string values separated by 0x00 (target may hold anything).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "audit/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Is s[0..len) valid UTF-8 (no overlong forms, surrogates or > U+10FFFF)? */
static int
valid_utf8(const unsigned char *s, size_t len)
{
	size_t i = 0, n, k;
	unsigned cp;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (s[i] >= 0xC2 && s[i] <= 0xDF)
			n = 2, cp = s[i] & 0x1F;
		else if (s[i] >= 0xE0 && s[i] <= 0xEF)
			n = 3, cp = s[i] & 0x0F;
		else if (s[i] >= 0xF0 && s[i] <= 0xF4)
			n = 4, cp = s[i] & 0x07;
		else
			return 0;
		if (len - i < n)
			return 0;
		for (k = 1; k < n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += n;
	}
	return 1;
}

#define NFIELDS 15

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const keys[] = {
		"ts", "event", "id", "client_ip", "client_port", "user", "method", "host", "port",
		"url", "dst_ip", "sni", "decision", "reason", "rule", "status", "bytes_up",
		"bytes_down", "duration_ms", "close", "target", "report", "client_tls", NULL,
	};
	char *copy, *field[NFIELDS] = { NULL }, *text;
	const char **slot[NFIELDS];
	struct audit_event ev;
	struct json_object *o, *v;
	size_t i, n = 0, start = 1;
	unsigned ctl;

	if (size < 1)
		return 0;
	ctl = data[0];
	if ((copy = malloc(size + 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	for (i = 1; i <= size && n < NFIELDS; i++)
		if (i == size || copy[i] == '\0') {
			copy[i] = '\0';
			field[n++] = copy + start;
			start = i + 1;
		}

	memset(&ev, 0, sizeof(ev));
	slot[0] = &ev.event; slot[1] = &ev.id; slot[2] = &ev.client_ip; slot[3] = &ev.user;
	slot[4] = &ev.method; slot[5] = &ev.host; slot[6] = &ev.url; slot[7] = &ev.dst_ip;
	slot[8] = &ev.sni; slot[9] = &ev.decision; slot[10] = &ev.reason; slot[11] = &ev.rule;
	slot[12] = &ev.close; slot[13] = &ev.report; slot[14] = &ev.message;
	for (i = 0; i < NFIELDS; i++)
		*slot[i] = (ctl & (1u << (i % 8))) && i != 14 ? NULL : field[i];
	if (field[14] != NULL && (ctl & 0x80) == 0)
		ev.message = NULL;
	if (n > 0 && (ctl & 0x40)) {
		ev.target = field[n - 1];
		ev.target_len = strlen(field[n - 1]) + (ctl & 0x20 ? 1 : 0);   /* a NUL inside */
		if (ev.target + ev.target_len > copy + size + 1)
			ev.target_len = strlen(field[n - 1]);
	}
	ev.client_port = ctl & 1 ? -1 : (int)(size * 7919 % 65536);
	ev.port = ctl & 2 ? -1 : (int)(size % 65536);
	ev.status = (int)(ctl * 3);
	ev.bytes_up = ctl & 4 ? -1 : (int64_t)size << 33;
	ev.bytes_down = ctl & 8 ? -1 : INT64_MAX;
	ev.duration_ms = ctl & 16 ? -1 : 0;
	ev.client_tls = (enum audit_bool)(ctl % 3);
	ev.lost = ctl & 0x10 ? (int64_t)size : -1;
	ev.end_ms = 1700000000000LL + (int64_t)size;

	text = audit_encode(&ev);
	assert(text != NULL);
	assert(strlen(text) <= AUDIT_RECORD_MAX);
	o = json_tokener_parse(text);
	assert(o != NULL && json_object_is_type(o, json_type_object));
	assert(valid_utf8((const unsigned char *)text, strlen(text)));
	for (i = 0; keys[i] != NULL; i++)
		assert(json_object_object_get_ex(o, keys[i], &v));
	/* A short, valid value reads back unchanged (event, host, user, sni). */
	{
		static const char *const names[] = { "event", "user", "host", "sni" };
		const char *given[] = { ev.event, ev.user, ev.host, ev.sni };

		for (i = 0; i < 4; i++) {
			if (given[i] == NULL || strlen(given[i]) > 100 ||
			    !valid_utf8((const unsigned char *)given[i], strlen(given[i])))
				continue;
			assert(json_object_object_get_ex(o, names[i], &v));
			assert(strcmp(json_object_get_string(v), given[i]) == 0);
		}
	}
	assert(strcmp(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE), text) == 0);
	json_object_put(o);
	free(text);
	free(copy);
	return 0;
}
