/*
 * check — egressctl check / explain, offline.
 *
 * `check` prints exactly what `egressd -t` prints: "FILE: ok (N rules)" or
 * every "FILE:LINE: message", exit 0 or 1.  `explain` evaluates one request
 * against the policy the configuration names and prints the decision, the
 * deciding rule as FILE:LINE with its text (or "default deny"), and with --sni
 * the verdict of the tunnel's SNI check, so an admin can answer "why was this
 * blocked?" without touching production.
 */
#include "admin/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gateway/config.h"
#include "policy/policy.h"

#define EXPLAIN_GROUPS_MAX 64

static void
print_errors(const char *errors)
{
	fputs(errors, stderr);
	if (errors[0] != '\0' && errors[strlen(errors) - 1] != '\n')
		fputc('\n', stderr);
}

/* Load configuration and policy; print the errors and return NULL on failure. */
static struct policy *
load(const char *path, struct config **confp)
{
	struct config *conf;
	struct policy *p;
	char *errors = NULL;

	if ((conf = config_load(path, &errors)) == NULL) {
		if (errors != NULL)
			print_errors(errors);
		free(errors);
		return NULL;
	}
	if ((p = policy_load(conf->policy_path, conf->policy_file, &errors)) == NULL) {
		if (errors != NULL)
			print_errors(errors);
		free(errors);
		config_free(conf);
		return NULL;
	}
	*confp = conf;
	return p;
}

int
admin_check(const char *path, int argc, char **argv, bool json)
{
	struct config *conf = NULL;
	struct policy *p;

	(void)argv;
	(void)json;
	if (argc != 0) {
		fprintf(stderr, "usage: egressctl check [-c CONF]\n");
		return 2;
	}
	if ((p = load(path, &conf)) == NULL)
		return 1;
	printf("%s: ok (%zu rules)\n", path, policy_rule_count(p));
	policy_unref(p);
	config_free(conf);
	return 0;
}

static const char *
sni_mode_name(enum policy_sni_mode m)
{
	return m == POLICY_SNI_REQUIRE ? "require" : m == POLICY_SNI_OPTIONAL ? "optional" : "off";
}

static int
explain_usage(void)
{
	fprintf(stderr, "usage: egressctl explain [-c CONF] [--user U] [--group G]... "
	    "--method M --host H --port P [--sni S] [--json]\n");
	return 2;
}

int
admin_explain(const char *path, int argc, char **argv, bool json)
{
	const char *groups[EXPLAIN_GROUPS_MAX];
	const char *user = NULL, *method = NULL, *host_arg = NULL, *port_arg = NULL;
	const char *sni_arg = NULL, *err = NULL, *sni_verdict = NULL;
	char host[HOST_BUF], sni[HOST_BUF], *end;
	struct policy_decision d, ds;
	struct policy_request pr;
	struct config *conf = NULL;
	enum host_kind kind, sni_kind;
	struct policy *p;
	size_t ngroups = 0;
	long port;
	int i;

	for (i = 0; i < argc; i++) {
		const char **slot = NULL;

		if (i + 1 >= argc)
			return explain_usage();
		if (strcmp(argv[i], "--user") == 0)
			slot = &user;
		else if (strcmp(argv[i], "--method") == 0)
			slot = &method;
		else if (strcmp(argv[i], "--host") == 0)
			slot = &host_arg;
		else if (strcmp(argv[i], "--port") == 0)
			slot = &port_arg;
		else if (strcmp(argv[i], "--sni") == 0)
			slot = &sni_arg;
		else if (strcmp(argv[i], "--group") == 0) {
			if (ngroups == EXPLAIN_GROUPS_MAX)
				return explain_usage();
			groups[ngroups++] = argv[++i];
			continue;
		} else
			return explain_usage();
		*slot = argv[++i];
	}
	if (method == NULL || host_arg == NULL || port_arg == NULL)
		return explain_usage();
	port = strtol(port_arg, &end, 10);
	if (*port_arg == '\0' || *end != '\0' || port < 1 || port > 65535) {
		fprintf(stderr, "egressctl: bad port \"%s\"\n", port_arg);
		return 2;
	}
	if (host_normalize(host_arg, strlen(host_arg), host, sizeof(host), &kind, &err) == -1) {
		fprintf(stderr, "egressctl: bad host \"%s\": %s\n", host_arg, err);
		return 2;
	}
	if ((p = load(path, &conf)) == NULL)
		return 1;

	memset(&pr, 0, sizeof(pr));
	pr.user = user;
	pr.groups = groups;
	pr.ngroups = ngroups;
	pr.method = method;
	pr.host = host;
	pr.port = (uint16_t)port;
	policy_decide(p, &pr, &d);

	if (sni_arg != NULL && d.allow) {
		if (host_normalize(sni_arg, strlen(sni_arg), sni, sizeof(sni), &sni_kind,
		    &err) == -1 || sni_kind != HOST_NAME)
			sni_verdict = "sni_invalid";
		else if (kind == HOST_NAME && strcmp(sni, host) != 0)
			sni_verdict = "sni_mismatch";
		else {
			pr.host = sni;
			policy_decide(p, &pr, &ds);
			sni_verdict = ds.allow ? "ok" : "sni_denied";
		}
	}

	if (json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "decision", json_object_new_string(d.allow ? "allow" : "deny"));
		json_object_object_add(o, "reason", json_object_new_string(d.reason));
		json_object_object_add(o, "rule", d.rule ? json_object_new_string(d.rule) : NULL);
		json_object_object_add(o, "rule_text",
		    d.rule_text ? json_object_new_string(d.rule_text) : NULL);
		json_object_object_add(o, "need_credentials",
		    json_object_new_boolean(d.need_credentials));
		json_object_object_add(o, "sni_mode", d.allow && strcmp(method, "CONNECT") == 0 ?
		    json_object_new_string(sni_mode_name(d.sni)) : NULL);
		json_object_object_add(o, "sni_verdict",
		    sni_verdict ? json_object_new_string(sni_verdict) : NULL);
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
		    JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		printf("decision: %s (%s)\n", d.allow ? "allow" : "deny", d.reason);
		if (d.rule != NULL)
			printf("rule: %s: %s\n", d.rule, d.rule_text != NULL ? d.rule_text : "");
		else
			printf("rule: default deny\n");
		if (d.need_credentials)
			printf("credentials: required (answered 407)\n");
		if (d.allow && strcmp(method, "CONNECT") == 0)
			printf("sni: %s\n", sni_mode_name(d.sni));
		if (sni_verdict != NULL)
			printf("sni verdict: %s\n", sni_verdict);
	}
	policy_unref(p);
	config_free(conf);
	return 0;
}
