/*
 * test_audit_json — audit_encode(): every contract field present with its
 * type, hostile strings made valid JSON the documented way (one U+FFFD per
 * byte that does not start a valid UTF-8 sequence), long values cut with the
 * marker, and every record within AUDIT_RECORD_MAX whatever its fields hold.
 *
 * Records are parsed back with json-c and checked twice: against the field
 * list below, and against audit/record.schema.json by a small validator for
 * the subset of JSON Schema the file uses (so the schema and the encoder
 * cannot drift apart unnoticed).  Run from the top of the tree.
 */
#include "audit/audit.h"

#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#define SCHEMA_PATH "audit/record.schema.json"
#define FFFD "\xEF\xBF\xBD"

/* The contract fields and the json-c type each has when not null. */
static const struct {
	const char *name;
	enum json_type type;
} fields[] = {
	{ "ts", json_type_string }, { "event", json_type_string },
	{ "id", json_type_string }, { "client_ip", json_type_string },
	{ "client_port", json_type_int }, { "user", json_type_string },
	{ "method", json_type_string }, { "host", json_type_string },
	{ "port", json_type_int }, { "url", json_type_string },
	{ "dst_ip", json_type_string }, { "sni", json_type_string },
	{ "decision", json_type_string }, { "reason", json_type_string },
	{ "rule", json_type_string }, { "status", json_type_int },
	{ "bytes_up", json_type_int }, { "bytes_down", json_type_int },
	{ "duration_ms", json_type_int }, { "close", json_type_string },
	{ "target", json_type_string }, { "report", json_type_string },
	{ "client_tls", json_type_boolean },
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static struct audit_event
tunnel_event(void)
{
	struct audit_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.event = "tunnel";
	ev.id = "00000000deadbeef-1";
	ev.client_ip = "192.0.2.7";
	ev.client_port = 51234;
	ev.user = "alice";
	ev.method = "CONNECT";
	ev.host = "example.com";
	ev.port = 443;
	ev.dst_ip = "93.184.216.34";
	ev.sni = "example.com";
	ev.decision = "allow";
	ev.reason = "ok";
	ev.rule = "policy.rules:4";
	ev.status = 200;
	ev.bytes_up = 3000000000LL;
	ev.bytes_down = 12345;
	ev.duration_ms = 1500;
	ev.close = "client";
	ev.client_tls = AUDIT_BOOL_FALSE;
	ev.lost = -1;
	ev.end_ms = 1700000000123LL;
	return ev;
}

/* A "start"-like record: everything that may be null is. */
static struct audit_event
bare_event(void)
{
	struct audit_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.event = "start";
	ev.id = "start-1";
	ev.client_port = -1;
	ev.port = -1;
	ev.decision = "allow";
	ev.reason = "ok";
	ev.bytes_up = ev.bytes_down = ev.duration_ms = -1;
	ev.lost = -1;
	return ev;
}

static struct json_object *
parse(const char *text)
{
	struct json_object *o;

	assert_non_null(text);
	o = json_tokener_parse(text);
	assert_non_null(o);
	assert_true(json_object_is_type(o, json_type_object));
	return o;
}

static struct json_object *
encode_parse(const struct audit_event *ev, char **textp)
{
	char *text = audit_encode(ev);
	struct json_object *o = parse(text);

	assert_true(strlen(text) <= AUDIT_RECORD_MAX);
	if (textp != NULL)
		*textp = text;
	else
		free(text);
	return o;
}

/* The value of string field key, which must be present and a string. */
static const char *
str_field(struct json_object *o, const char *key)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(o, key, &v));
	assert_true(json_object_is_type(v, json_type_string));
	return json_object_get_string(v);
}

/* The one string value of a record whose host is s. */
static char *
host_roundtrip(const char *s)
{
	struct audit_event ev = tunnel_event();
	struct json_object *o;
	char *out;

	ev.host = s;
	o = encode_parse(&ev, NULL);
	out = strdup(str_field(o, "host"));
	json_object_put(o);
	return out;
}

/* ---- a small validator for the schema subset audit/record.schema.json uses ---- */

static int validate(struct json_object *v, struct json_object *schema);

static int
type_matches(struct json_object *v, const char *t)
{
	if (strcmp(t, "null") == 0)
		return v == NULL;
	if (v == NULL)
		return 0;
	if (strcmp(t, "string") == 0)
		return json_object_is_type(v, json_type_string);
	if (strcmp(t, "integer") == 0)
		return json_object_is_type(v, json_type_int);
	if (strcmp(t, "object") == 0)
		return json_object_is_type(v, json_type_object);
	if (strcmp(t, "boolean") == 0)
		return json_object_is_type(v, json_type_boolean);
	fail_msg("schema type %s not handled by the test validator", t);
	return 0;
}

static int
equal(struct json_object *a, struct json_object *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return json_object_equal(a, b);
}

static int
validate(struct json_object *v, struct json_object *schema)
{
	struct json_object *k, *p, *sub;
	size_t i, n;
	int ok;

	if (json_object_object_get_ex(schema, "type", &k)) {
		if (json_object_is_type(k, json_type_string)) {
			if (!type_matches(v, json_object_get_string(k)))
				return 0;
		} else {
			n = json_object_array_length(k);
			for (ok = 0, i = 0; i < n; i++)
				ok |= type_matches(v, json_object_get_string(
				    json_object_array_get_idx(k, i)));
			if (!ok)
				return 0;
		}
	}
	if (json_object_object_get_ex(schema, "enum", &k)) {
		n = json_object_array_length(k);
		for (ok = 0, i = 0; i < n; i++)
			ok |= equal(v, json_object_array_get_idx(k, i));
		if (!ok)
			return 0;
	}
	if (json_object_object_get_ex(schema, "const", &k) && !equal(v, k))
		return 0;
	if (v != NULL && json_object_is_type(v, json_type_int)) {
		if (json_object_object_get_ex(schema, "minimum", &k) &&
		    json_object_get_int64(v) < json_object_get_int64(k))
			return 0;
		if (json_object_object_get_ex(schema, "maximum", &k) &&
		    json_object_get_int64(v) > json_object_get_int64(k))
			return 0;
	}
	if (v != NULL && json_object_is_type(v, json_type_string)) {
		if (json_object_object_get_ex(schema, "minLength", &k) &&
		    (int64_t)json_object_get_string_len(v) < json_object_get_int64(k))
			return 0;
		if (json_object_object_get_ex(schema, "pattern", &k)) {
			regex_t re;

			assert_int_equal(regcomp(&re, json_object_get_string(k),
			    REG_EXTENDED | REG_NOSUB), 0);
			ok = regexec(&re, json_object_get_string(v), 0, NULL, 0) == 0;
			regfree(&re);
			if (!ok)
				return 0;
		}
	}
	if (v != NULL && json_object_is_type(v, json_type_object)) {
		if (json_object_object_get_ex(schema, "required", &k)) {
			n = json_object_array_length(k);
			for (i = 0; i < n; i++)
				if (!json_object_object_get_ex(v, json_object_get_string(
				    json_object_array_get_idx(k, i)), NULL))
					return 0;
		}
		if (json_object_object_get_ex(schema, "properties", &p)) {
			json_object_object_foreach(v, key, val) {
				if (json_object_object_get_ex(p, key, &sub)) {
					if (!validate(val, sub))
						return 0;
				} else if (json_object_object_get_ex(schema,
				    "additionalProperties", &k) && !json_object_get_boolean(k))
					return 0;
			}
		}
	}
	if (json_object_object_get_ex(schema, "allOf", &k)) {
		n = json_object_array_length(k);
		for (i = 0; i < n; i++)
			if (!validate(v, json_object_array_get_idx(k, i)))
				return 0;
	}
	if (json_object_object_get_ex(schema, "anyOf", &k)) {
		n = json_object_array_length(k);
		for (ok = 0, i = 0; i < n; i++)
			ok |= validate(v, json_object_array_get_idx(k, i));
		if (!ok)
			return 0;
	}
	if (json_object_object_get_ex(schema, "not", &k) && validate(v, k))
		return 0;
	if (json_object_object_get_ex(schema, "if", &k)) {
		if (validate(v, k)) {
			if (json_object_object_get_ex(schema, "then", &sub) && !validate(v, sub))
				return 0;
		} else if (json_object_object_get_ex(schema, "else", &sub) && !validate(v, sub))
			return 0;
	}
	return 1;
}

static struct json_object *
load_schema(void)
{
	struct json_object *s = json_object_from_file(SCHEMA_PATH);

	if (s == NULL)
		fail_msg("cannot read %s (run from the top of the tree)", SCHEMA_PATH);
	return s;
}

/* Every field present with its type or null; only lost/message beyond them. */
static void
check_shape(struct json_object *o)
{
	struct json_object *v;
	size_t i, extra = 0;

	for (i = 0; i < NFIELDS; i++) {
		if (!json_object_object_get_ex(o, fields[i].name, &v))
			fail_msg("field %s absent", fields[i].name);
		if (v != NULL && !json_object_is_type(v, fields[i].type))
			fail_msg("field %s has the wrong type", fields[i].name);
	}
	if (json_object_object_get_ex(o, "lost", &v)) {
		assert_true(json_object_is_type(v, json_type_int));
		extra++;
	}
	if (json_object_object_get_ex(o, "message", &v)) {
		assert_true(json_object_is_type(v, json_type_string));
		extra++;
	}
	assert_int_equal(json_object_object_length(o), NFIELDS + extra);
}

static void
check_record(const struct audit_event *ev)
{
	struct json_object *o, *schema;

	o = encode_parse(ev, NULL);
	check_shape(o);
	schema = load_schema();
	if (!validate(o, schema))
		fail_msg("record does not match %s: %s", SCHEMA_PATH,
		    json_object_to_json_string(o));
	json_object_put(schema);
	json_object_put(o);
}

/* ---- tests ---------------------------------------------------------- */

static void
test_tunnel_fields(void **state)
{
	struct audit_event ev = tunnel_event();
	struct json_object *o, *v;

	check_record(&ev);
	o = encode_parse(&ev, NULL);
	assert_string_equal(str_field(o, "ts"), "2023-11-14T22:13:20.123Z");
	assert_string_equal(str_field(o, "event"), "tunnel");
	assert_string_equal(str_field(o, "rule"), "policy.rules:4");
	assert_true(json_object_object_get_ex(o, "bytes_up", &v));
	assert_int_equal(json_object_get_int64(v), 3000000000LL);
	assert_true(json_object_object_get_ex(o, "port", &v));
	assert_int_equal(json_object_get_int(v), 443);
	assert_true(json_object_object_get_ex(o, "url", &v));
	assert_null(v);
	assert_false(json_object_object_get_ex(o, "lost", NULL));
	assert_false(json_object_object_get_ex(o, "message", NULL));
	json_object_put(o);
}

static void
test_nulls_present(void **state)
{
	struct audit_event ev = bare_event();
	struct json_object *o, *v;
	static const char *const nulls[] = {
		"client_ip", "client_port", "user", "method", "host", "port", "url",
		"dst_ip", "sni", "rule", "bytes_up", "bytes_down", "duration_ms", "close",
		"target", "report", "client_tls",
	};
	size_t i;

	check_record(&ev);
	o = encode_parse(&ev, NULL);
	for (i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
		assert_true(json_object_object_get_ex(o, nulls[i], &v));
		assert_null(v);
	}
	/* status 0 is a number ("no status sent"), not null */
	assert_true(json_object_object_get_ex(o, "status", &v));
	assert_non_null(v);
	assert_int_equal(json_object_get_int(v), 0);
	json_object_put(o);
}

/* target (raw, bounded, escaped), report and the tri-state client_tls. */
static void
test_target_report_client_tls(void **state)
{
	struct audit_event ev = tunnel_event();
	struct json_object *o, *v;
	char target[300];
	const char *got;

	(void)state;
	memset(target, 'a', sizeof(target));
	memcpy(target, "0x7f.0.0.1:443\0\"\n", 17);
	ev.reason = "bad_request";
	ev.decision = "deny";
	ev.target = target;
	ev.target_len = sizeof(target);
	ev.report = "policy.rules:9";
	ev.client_tls = AUDIT_BOOL_TRUE;
	check_record(&ev);
	o = encode_parse(&ev, NULL);
	got = str_field(o, "target");
	/* The NUL became U+FFFD, the quote and LF were escaped and decoded back,
	 * and only AUDIT_TARGET_MAX bytes of the target were kept. */
	assert_memory_equal(got, "0x7f.0.0.1:443\xef\xbf\xbd\"\n", 19);
	assert_int_equal(strlen(got), AUDIT_TARGET_MAX - 17 + 19);
	assert_string_equal(str_field(o, "report"), "policy.rules:9");
	assert_true(json_object_object_get_ex(o, "client_tls", &v));
	assert_true(json_object_get_boolean(v));
	json_object_put(o);

	ev.client_tls = AUDIT_BOOL_FALSE;
	ev.target = NULL;
	ev.report = NULL;
	o = encode_parse(&ev, NULL);
	assert_true(json_object_object_get_ex(o, "client_tls", &v));
	assert_non_null(v);
	assert_false(json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(o, "target", &v));
	assert_null(v);
	assert_true(json_object_object_get_ex(o, "report", &v));
	assert_null(v);
	json_object_put(o);

	ev = bare_event();          /* a record of no connection: client_tls null */
	o = encode_parse(&ev, NULL);
	assert_true(json_object_object_get_ex(o, "client_tls", &v));
	assert_null(v);
	json_object_put(o);
}

static void
test_extensions(void **state)
{
	struct audit_event ev = bare_event();
	struct json_object *o, *v;

	ev.event = "audit_loss";
	ev.id = "audit_loss-1";
	ev.decision = ev.reason = NULL;
	ev.status = -1;
	ev.lost = 17;
	check_record(&ev);
	o = encode_parse(&ev, NULL);
	assert_true(json_object_object_get_ex(o, "lost", &v));
	assert_int_equal(json_object_get_int64(v), 17);
	json_object_put(o);

	ev = bare_event();
	ev.event = "reload";
	ev.reason = "policy_error";
	ev.decision = "deny";
	ev.message = "policy.rules:3: bad action \"alow\"\npolicy.rules:9: bad port";
	check_record(&ev);
	o = encode_parse(&ev, NULL);
	assert_string_equal(str_field(o, "message"), ev.message);
	json_object_put(o);

	/* an empty string stays a string */
	ev = tunnel_event();
	ev.user = "";
	o = encode_parse(&ev, NULL);
	assert_string_equal(str_field(o, "user"), "");
	json_object_put(o);
}

static void
test_schema_lists_the_fields(void **state)
{
	struct json_object *schema, *req, *props;
	size_t i, j, n;
	int found;

	schema = load_schema();
	assert_true(json_object_object_get_ex(schema, "required", &req));
	assert_true(json_object_object_get_ex(schema, "properties", &props));
	n = json_object_array_length(req);
	assert_int_equal(n, NFIELDS);
	for (i = 0; i < NFIELDS; i++) {
		for (found = 0, j = 0; j < n; j++)
			found |= strcmp(fields[i].name, json_object_get_string(
			    json_object_array_get_idx(req, j))) == 0;
		if (!found)
			fail_msg("schema does not require %s", fields[i].name);
	}
	assert_int_equal(json_object_object_length(props), NFIELDS + 2);     /* + lost, message */
	json_object_put(schema);
}

static void
test_schema_rejects(void **state)
{
	struct json_object *schema, *o;
	char *text;
	struct audit_event ev = tunnel_event();

	schema = load_schema();
	text = audit_encode(&ev);
	o = parse(text);
	json_object_object_del(o, "sni");                       /* absent, not null */
	assert_false(validate(o, schema));
	json_object_put(o);
	o = parse(text);
	json_object_object_add(o, "decision", json_object_new_string("maybe"));
	assert_false(validate(o, schema));
	json_object_put(o);
	o = parse(text);
	json_object_object_add(o, "bytes_up", json_object_new_string("12"));
	assert_false(validate(o, schema));
	json_object_put(o);
	o = parse(text);
	json_object_object_add(o, "password", json_object_new_string("x"));
	assert_false(validate(o, schema));
	json_object_put(o);
	o = parse(text);
	json_object_object_add(o, "close", NULL);               /* tunnels always close somehow */
	assert_false(validate(o, schema));
	json_object_put(o);
	free(text);
	json_object_put(schema);
}

static void
test_escaping(void **state)
{
	static const char hostile[] = "a\"b\\c/d\x01\x1f\n\r\t\b\f\x7f end";
	struct audit_event ev = tunnel_event();
	struct json_object *o;
	char *text;
	size_t i;

	ev.user = hostile;
	ev.url = "http://x/\"}, \"decision\": \"allow";
	o = encode_parse(&ev, &text);
	check_shape(o);
	/* the bytes come back exactly, and the record holds no raw control byte */
	assert_string_equal(str_field(o, "user"), hostile);
	assert_string_equal(str_field(o, "url"), ev.url);
	assert_string_equal(str_field(o, "decision"), "allow");
	for (i = 0; text[i] != '\0'; i++)
		assert_true((unsigned char)text[i] >= 0x20);
	assert_non_null(strstr(text, "\\u0001"));
	assert_non_null(strstr(text, "\\\"b\\\\c"));
	assert_non_null(strstr(text, "c/d"));           /* no needless \/ */
	json_object_put(o);
	free(text);
}

static void
test_utf8_valid_kept(void **state)
{
	static const char s[] = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBF \xF4\x8F\xBF\xBF";
	char *out = host_roundtrip(s);

	assert_string_equal(out, s);
	free(out);
}

static void
test_utf8_invalid(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "a\xFF" "b", "a" FFFD "b" },                          /* never valid */
		{ "\x80\xBF", FFFD FFFD },                              /* stray continuations */
		{ "x\xC3", "x" FFFD },                                  /* cut short at the end */
		{ "\xE2\x82" "A", FFFD FFFD "A" },                      /* cut short, then resumes */
		{ "\xC0\xAF", FFFD FFFD },                              /* overlong '/' */
		{ "\xC1\xBF", FFFD FFFD },                              /* overlong */
		{ "\xE0\x80\xAF", FFFD FFFD FFFD },                     /* overlong 3 bytes */
		{ "\xF0\x80\x80\xAF", FFFD FFFD FFFD FFFD },            /* overlong 4 bytes */
		{ "\xED\xA0\x80", FFFD FFFD FFFD },                     /* high surrogate */
		{ "\xED\xBF\xBF", FFFD FFFD FFFD },                     /* low surrogate */
		{ "\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD },            /* above U+10FFFF */
		{ "\xF5\x80\x80\x80", FFFD FFFD FFFD FFFD },
		{ "\xC3\xA9\xFE\xC3\xA9", "\xC3\xA9" FFFD "\xC3\xA9" }, /* valid around it kept */
	};
	size_t i;
	char *out;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		out = host_roundtrip(cases[i].in);
		if (strcmp(out, cases[i].out) != 0)
			fail_msg("case %zu: got \"%s\"", i, out);
		free(out);
	}
}

static void
test_truncation(void **state)
{
	static const char mark[] = AUDIT_TRUNCATED_MARK;
	char *big, *out;
	size_t i, len;

	big = malloc(5001);
	assert_non_null(big);
	memset(big, 'a', 5000);
	big[5000] = '\0';
	out = host_roundtrip(big);
	len = strlen(out);
	assert_int_equal(len, AUDIT_VALUE_MAX + sizeof(mark) - 1);
	assert_string_equal(out + AUDIT_VALUE_MAX, mark);
	free(out);

	/* exactly at the limit: kept whole, no marker */
	big[AUDIT_VALUE_MAX] = '\0';
	out = host_roundtrip(big);
	assert_string_equal(out, big);
	free(out);

	/* cut on a character boundary: 2-byte characters, never half of one */
	for (i = 0; i + 1 < 5000; i += 2) {
		big[i] = '\xC3';
		big[i + 1] = '\xA9';
	}
	big[i] = '\0';
	out = host_roundtrip(big);
	len = strlen(out) - (sizeof(mark) - 1);
	assert_int_equal(len, AUDIT_VALUE_MAX);
	assert_string_equal(out + len, mark);
	for (i = 0; i < len; i += 2)
		assert_memory_equal(out + i, "\xC3\xA9", 2);
	free(out);

	/* the limit counts escapes: 0x01 costs 6 bytes of JSON */
	memset(big, '\x01', 5000);
	big[5000] = '\0';
	out = host_roundtrip(big);
	assert_int_equal(strlen(out), AUDIT_VALUE_MAX / 6 + sizeof(mark) - 1);
	free(out);
	free(big);
}

/* Every string field at its worst at once: still within the bound, still valid. */
static void
test_record_bound(void **state)
{
	static const char fill[] = { '\x01', '\xFF', '"', 'a' };
	struct audit_event ev;
	struct json_object *o;
	char *big, *text;
	size_t f;

	big = malloc(20001);
	assert_non_null(big);
	for (f = 0; f < sizeof(fill); f++) {
		memset(big, fill[f], 20000);
		big[20000] = '\0';
		ev = tunnel_event();
		ev.event = "request";
		ev.id = ev.client_ip = ev.user = ev.method = ev.host = ev.url = big;
		ev.dst_ip = ev.sni = ev.rule = big;
		ev.reason = "ok";
		ev.bytes_up = ev.bytes_down = ev.duration_ms = INT64_MAX;
		ev.client_port = ev.port = 65535;
		o = encode_parse(&ev, &text);
		check_shape(o);
		assert_true(strlen(text) <= AUDIT_RECORD_MAX);
		assert_non_null(strstr(str_field(o, "url"), AUDIT_TRUNCATED_MARK));
		json_object_put(o);
		free(text);

		/* and with the enum-like fields hostile too, plus a message */
		ev.event = ev.decision = ev.reason = ev.close = ev.message = big;
		text = audit_encode(&ev);
		assert_non_null(text);
		assert_true(strlen(text) <= AUDIT_RECORD_MAX);
		o = parse(text);
		json_object_put(o);
		free(text);
	}
	free(big);
}

static void
test_encode_limit(void **state)
{
	struct audit_event ev = tunnel_event();
	struct json_object *o;
	char *text;

	ev.host = "abcdefghijklmnopqrstuvwxyz";
	text = audit_encode_limit(&ev, 10);
	o = parse(text);
	assert_string_equal(str_field(o, "host"), "abcdefghij" AUDIT_TRUNCATED_MARK);
	json_object_put(o);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tunnel_fields),
		cmocka_unit_test(test_nulls_present),
		cmocka_unit_test(test_extensions),
		cmocka_unit_test(test_target_report_client_tls),
		cmocka_unit_test(test_schema_lists_the_fields),
		cmocka_unit_test(test_schema_rejects),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_utf8_valid_kept),
		cmocka_unit_test(test_utf8_invalid),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_record_bound),
		cmocka_unit_test(test_encode_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
