/*
 * check — egressctl check / explain, offline.
 *
 * `check` prints exactly what `egressd -t` prints: "FILE: ok (N rules)" or
 * every "FILE:LINE: message", exit 0 or 1.  `explain` evaluates one request
 * against the policy the configuration names and prints the final outcome
 * first (an allowed CONNECT whose ClientHello would be refused reads "deny
 * (sni_mismatch)"), then the CONNECT's own decision, the
 * deciding rule as FILE:LINE with its text (or "default deny"), and with --sni
 * the verdict of the tunnel's SNI check, so an admin can answer "why was this
 * blocked?" without touching production.  It decides exactly as the gateway
 * would: the configuration's `auth` says whether identity rules exist at all
 * (under "auth none" they never match), and the SNI check is the tunnel's,
 * run only where the gateway would run it (an allowed CONNECT whose rule does
 * not say sni=off).
 */
#include "admin/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "config/config.h"
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

/*
 * As egressd -t: the files the configuration names, the policy, then the
 * policy's lint warnings (on stderr; with --strict they fail the check).
 */
int
admin_check(const char *path, int argc, char **argv, bool json)
{
	struct config *conf = NULL;
	struct policy *p;
	char *errors = NULL, *warnings = NULL;
	bool strict = false;
	size_t nw;
	int bad;

	(void)json;
	if (argc == 1 && strcmp(argv[0], "--strict") == 0)
		strict = true;
	else if (argc != 0) {
		fprintf(stderr, "usage: egressctl check [-c CONF] [--strict]\n");
		return 2;
	}
	if ((conf = config_load(path, &errors)) == NULL) {
		if (errors != NULL)
			print_errors(errors);
		free(errors);
		return 1;
	}
	bad = config_check_files(conf, &errors) > 0;
	if (errors != NULL)
		print_errors(errors);
	free(errors);
	errors = NULL;
	if ((p = policy_load(conf->policy_path, conf->policy_file, &errors)) == NULL) {
		if (errors != NULL)
			print_errors(errors);
		free(errors);
		config_free(conf);
		return 1;
	}
	nw = policy_lint(p, conf->auth == CONFIG_AUTH_NONE, &warnings);
	if (warnings != NULL)
		print_errors(warnings);
	free(warnings);
	if (!bad && !(strict && nw > 0))
		admin_print_ok(path, p);
	policy_unref(p);
	config_free(conf);
	return bad || (strict && nw > 0) ? 1 : 0;
}

/*
 * "FILE: ok (N rules)", and with domain lists the entries beside the rules:
 * "FILE: ok (N rules), M list entries in K lists".  egressd -t prints the same.
 */
void
admin_print_ok(const char *path, const struct policy *p)
{
	size_t nl = policy_list_count(p);

	if (nl == 0)
		printf("%s: ok (%zu rules)\n", path, policy_rule_count(p));
	else
		printf("%s: ok (%zu rules), %zu list entries in %zu list%s\n", path,
		    policy_rule_count(p), policy_entry_count(p), nl, nl == 1 ? "" : "s");
}

/* "LIST:LINE" of a list entry. */
static const char *
entry_ref(const char *list, unsigned line, char *buf, size_t bufsz)
{
	snprintf(buf, bufsz, "%s:%u", list, line);
	return buf;
}

/* "FILE:LINE", or "FILE:LINE via LIST:LINE" for a rule that matched by a list entry. */
static const char *
rule_via(const char *rule, const char *list, unsigned line, char *buf, size_t bufsz)
{
	if (rule == NULL)
		return NULL;
	if (list == NULL)
		return rule;
	snprintf(buf, bufsz, "%s via %s:%u", rule, list, line);
	return buf;
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

/* What the gateway's SNI check would say about --sni, as the contract words it. */
struct sni_result {
	const char *verdict;            /* "ok", "sni_mismatch", "sni_invalid", "sni_denied",
	                                   "not_checked"; NULL without --sni */
	char why[HOST_BUF * 2 + 96];    /* one line for the admin */
	struct policy_decision d;       /* the re-decision with the server name as host */
	bool decided;                   /* d is set */
};

/*
 * The tunnel's SNI check, offline: only for an allowed CONNECT whose rule
 * reads the ClientHello.  The server name must be a name (not an IP literal),
 * must equal the CONNECT host where that is a name, and the policy evaluated
 * again for the same user, port and method with the server name as host must
 * allow it.
 */
static void
explain_sni(const struct policy *p, struct policy_request pr, const struct policy_decision *d,
    const char *host, enum host_kind kind, const char *sni_arg, struct sni_result *res)
{
	char sni[HOST_BUF];
	enum host_kind sni_kind;
	const char *err = NULL;

	memset(res, 0, sizeof(*res));
	res->verdict = "not_checked";
	if (strcmp(pr.method, "CONNECT") != 0) {
		snprintf(res->why, sizeof(res->why), "SNI is read on CONNECT tunnels only");
		return;
	}
	if (!d->allow) {
		snprintf(res->why, sizeof(res->why), "the CONNECT itself is refused");
		return;
	}
	if (d->sni == POLICY_SNI_OFF) {
		snprintf(res->why, sizeof(res->why), "the deciding rule has sni=off");
		return;
	}
	if (host_normalize(sni_arg, strlen(sni_arg), sni, sizeof(sni), &sni_kind, &err) == -1) {
		res->verdict = "sni_invalid";
		snprintf(res->why, sizeof(res->why), "server name \"%.253s\": %s", sni_arg, err);
		return;
	}
	if (sni_kind != HOST_NAME) {
		res->verdict = "sni_invalid";
		snprintf(res->why, sizeof(res->why), "server name %s is an IP literal", sni);
		return;
	}
	if (kind == HOST_NAME && strcmp(sni, host) != 0) {
		res->verdict = "sni_mismatch";
		snprintf(res->why, sizeof(res->why), "server name %s differs from the CONNECT host %s",
		    sni, host);
		return;
	}
	pr.host = sni;
	policy_decide(p, &pr, &res->d);
	res->decided = true;
	res->verdict = res->d.allow ? "ok" : "sni_denied";
	snprintf(res->why, sizeof(res->why), "policy for host %s: %s (%s)", sni,
	    res->d.allow ? "allow" : "deny", res->d.rule != NULL ? res->d.rule : "default deny");
	/* The tunnel's record names the first report rule either decision matched. */
}

static void
json_add_str(struct json_object *o, const char *key, const char *val)
{
	json_object_object_add(o, key, val != NULL ? json_object_new_string(val) : NULL);
}

int
admin_explain(const char *path, int argc, char **argv, bool json)
{
	const char *groups[EXPLAIN_GROUPS_MAX];
	const char *user = NULL, *method = NULL, *host_arg = NULL, *port_arg = NULL;
	const char *sni_arg = NULL, *err = NULL;
	char host[HOST_BUF], *end;
	struct policy_decision d;
	struct policy_request pr;
	struct sni_result sr;
	struct config *conf = NULL;
	enum host_kind kind;
	struct policy *p;
	const char *final_reason, *report;
	char via[1024], sni_via[1024];
	size_t ngroups = 0;
	bool final_allow;
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
	/* As the gateway decides: under "auth none" nobody is an identity. */
	pr.no_identity = conf->auth == CONFIG_AUTH_NONE;
	if (ngroups > 0 && user == NULL)
		fprintf(stderr, "egressctl: warning: --group without --user: the gateway knows "
		    "groups only of an authenticated user, no real request looks like this\n");
	if (user != NULL && pr.no_identity)
		fprintf(stderr, "egressctl: warning: --user under \"auth none\" (%s): nobody is "
		    "authenticated, the user and its groups are ignored\n", path);
	policy_decide(p, &pr, &d);
	/* The final outcome: an allowed CONNECT whose ClientHello would be refused is a deny. */
	final_allow = d.allow;
	final_reason = d.reason;
	if (sni_arg != NULL) {
		explain_sni(p, pr, &d, host, kind, sni_arg, &sr);
		if (strcmp(sr.verdict, "ok") != 0 && strcmp(sr.verdict, "not_checked") != 0) {
			final_allow = false;
			final_reason = sr.verdict;
		}
	}

	/* The record's report field: the CONNECT's report rule, else the SNI re-check's. */
	if (sni_arg != NULL && sr.decided)
		policy_report_merge(&d, &sr.d);
	report = d.report;

	if (json) {
		struct json_object *o = json_object_new_object(), *s;

		json_add_str(o, "outcome", final_allow ? "allow" : "deny");
		json_add_str(o, "outcome_reason", final_reason);
		json_add_str(o, "decision", d.allow ? "allow" : "deny");
		json_add_str(o, "reason", d.reason);
		json_add_str(o, "rule", d.rule);
		json_add_str(o, "rule_text", d.rule_text);
		json_add_str(o, "list_entry", d.list != NULL ? entry_ref(d.list, d.list_line, via,
		    sizeof(via)) : NULL);
		json_add_str(o, "report", report);
		json_add_str(o, "report_text", report != NULL ? d.report_text : NULL);
		json_object_object_add(o, "need_credentials",
		    json_object_new_boolean(d.need_credentials));
		json_add_str(o, "host", host);
		json_add_str(o, "auth", conf->auth == CONFIG_AUTH_NONE ? "none" : "ldap");
		json_add_str(o, "sni_mode", d.allow && strcmp(method, "CONNECT") == 0 ?
		    sni_mode_name(d.sni) : NULL);
		if (sni_arg != NULL) {
			json_add_str(o, "sni_verdict", sr.verdict);
			s = json_object_new_object();
			json_add_str(s, "detail", sr.why);
			json_add_str(s, "rule", sr.decided ? sr.d.rule : NULL);
			json_add_str(s, "list_entry", sr.decided && sr.d.list != NULL ?
			    entry_ref(sr.d.list, sr.d.list_line, sni_via, sizeof(sni_via)) : NULL);
			json_add_str(s, "rule_text", sr.decided ? sr.d.rule_text : NULL);
			json_object_object_add(o, "sni", s);
		} else
			json_object_object_add(o, "sni_verdict", NULL);
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
		    JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		printf("decision: %s (%s)\n", final_allow ? "allow" : "deny", final_reason);
		if (final_allow != d.allow)
			printf("why: the CONNECT itself is allowed (%s), but a ClientHello naming %s "
			    "would be refused: %s\n", d.reason, sni_arg, sr.why);
		if (d.rule != NULL)
			printf("rule: %s: %s\n", rule_via(d.rule, d.list, d.list_line, via,
			    sizeof(via)), d.rule_text != NULL ? d.rule_text : "");
		else
			printf("rule: default deny (no rule matches %s port %ld %s)\n", host, port,
			    method);
		/* "would be denied by FILE:LINE (report)" as one piece; the entry after it. */
		if (report != NULL)
			printf("report: would be denied by %s (report)%s%s: %s\n", report,
			    d.report_list != NULL ? " via " : "", d.report_list != NULL ?
			    entry_ref(d.report_list, d.report_line, via, sizeof(via)) : "",
			    d.report_text != NULL ? d.report_text : "");
		if (d.need_credentials)
			printf("credentials: required (answered 407)\n");
		if (pr.no_identity && (user != NULL || ngroups > 0))
			printf("note: auth none: rules for authenticated, user: and group: never "
			    "match\n");
		if (d.allow && strcmp(method, "CONNECT") == 0)
			printf("sni: %s\n", sni_mode_name(d.sni));
		if (sni_arg != NULL) {
			printf("sni verdict: %s (%s)\n", sr.verdict, sr.why);
			if (sr.decided)
				printf("sni rule: %s%s%s\n", sr.d.rule != NULL ? rule_via(sr.d.rule,
				    sr.d.list, sr.d.list_line, sni_via, sizeof(sni_via)) :
				    "default deny", sr.d.rule_text != NULL ? ": " : "",
				    sr.d.rule_text != NULL ? sr.d.rule_text : "");
		}
	}
	policy_unref(p);
	config_free(conf);
	return 0;
}
