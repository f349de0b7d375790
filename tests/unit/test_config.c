/*
 * test_config — egressd.conf: every key good and bad, errors with their line
 * numbers (all of them, not the first), repeated and required keys, defaults,
 * and relative paths resolved against the file's folder.  Files are written
 * to a mkdtemp() directory.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[64];
static char conf[128];

#define BASE "listen 127.0.0.1:3128\npolicy_file policy.rules\n"

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test_config.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(conf, sizeof(conf), "%s/egressd.conf", dir);
	return 0;
}

static int
teardown(void **state)
{
	unlink(conf);
	rmdir(dir);
	return 0;
}

static void
write_conf(const char *text, size_t len)
{
	FILE *f = fopen(conf, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
}

static struct config *
load_ok(const char *text)
{
	struct config *c;
	char *err = NULL;

	write_conf(text, strlen(text));
	c = config_load(conf, &err);
	if (c == NULL)
		fail_msg("unexpected errors:\n%s", err ? err : "(none)");
	assert_null(err);
	return c;
}

/* Load text that must fail; returns the errors (caller frees). */
static char *
load_bad(const char *text)
{
	struct config *c;
	char *err = NULL;

	write_conf(text, strlen(text));
	c = config_load(conf, &err);
	assert_null(c);
	assert_non_null(err);
	return err;
}

/* "FILE:LINE: msg" must be in the errors of text. */
static void
expect_error_at(const char *text, size_t line, const char *msg)
{
	char *err = load_bad(text), want[512];

	if (line > 0)
		snprintf(want, sizeof(want), "%s:%zu: %s", conf, line, msg);
	else
		snprintf(want, sizeof(want), "%s: %s", conf, msg);
	if (strstr(err, want) == NULL)
		fail_msg("want \"%s\" in:\n%s", want, err);
	free(err);
}

/* A bad line appended to a good base: the error is on line 3. */
static void
bad_line(const char *line, const char *msg)
{
	char text[1024];

	snprintf(text, sizeof(text), BASE "%s\n", line);
	expect_error_at(text, 3, msg);
}

static void
good_line(const char *line)
{
	char text[1024];

	snprintf(text, sizeof(text), BASE "%s\n", line);
	config_free(load_ok(text));
}

static void
test_defaults(void **state)
{
	struct config *c = load_ok(BASE);
	char want[256];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	assert_string_equal(c->path, conf);
	assert_int_equal(c->nlisten, 1);
	assert_string_equal(c->listen[0].text, "127.0.0.1:3128");
	assert_false(c->listen[0].proxy_protocol);
	assert_int_equal(c->listen[0].addr.ss_family, AF_INET);
	assert_int_equal(c->workers, ncpu < 1 ? 1 : ncpu > 256 ? 256 : ncpu);
	assert_string_equal(c->policy_file, "policy.rules");
	snprintf(want, sizeof(want), "%s/policy.rules", dir);
	assert_string_equal(c->policy_path, want);
	assert_string_equal(c->dns_hosts_file, "/etc/hosts");
	assert_string_equal(c->dns_resolv_conf, "/etc/resolv.conf");
	assert_int_equal(c->nallow_internal, 0);
	assert_int_equal(c->auth, CONFIG_AUTH_NONE);
	assert_int_equal(c->nldap_uri, 0);
	assert_false(c->ldap_starttls);
	assert_null(c->ldap_bind_dn);
	assert_null(c->ldap_bind_password_file);
	assert_null(c->ldap_user_base);
	assert_string_equal(c->ldap_user_filter, "(uid=%u)");
	assert_null(c->ldap_group_base);
	assert_string_equal(c->ldap_group_filter, "(member=%d)");
	assert_string_equal(c->ldap_group_attr, "cn");
	assert_int_equal(c->ldap_timeout, 5);
	assert_string_equal(c->auth_realm, "egressd");
	assert_int_equal(c->auth_cache_ttl, 300);
	assert_int_equal(c->auth_negative_ttl, 5);
	assert_string_equal(c->audit_syslog_socket, "/dev/log");
	assert_int_equal(c->audit_facility, 21);
	assert_string_equal(c->audit_tag, "egressd");
	assert_false(c->audit_on_failure_deny);
	assert_null(c->admin_socket);
	assert_false(c->has_metrics_listen);
	assert_int_equal(c->connect_timeout, 10);
	assert_int_equal(c->idle_timeout, 300);
	assert_int_equal(c->sni_timeout, 10);
	assert_int_equal(c->header_timeout, 30);
	assert_int_equal(c->shutdown_grace, 30);
	assert_int_equal(c->max_connections, 20000);
	config_free(c);
}

static void
test_every_key(void **state)
{
	struct config *c = load_ok(
	    "# every key of the contract\n"
	    "listen 127.0.0.1:3128\n"
	    "listen [::1]:3128\n"
	    "listen 0.0.0.0:3129 proxy_protocol\n"
	    "workers 4\n"
	    "policy_file /etc/egressd/policy.rules\n"
	    "dns_hosts_file hosts\n"
	    "dns_resolv_conf /etc/resolv.conf\n"
	    "allow_internal 127.0.0.1/32\n"
	    "allow_internal 10.1.0.0/16\n"
	    "allow_internal fd00::/8\n"
	    "auth ldap\n"
	    "ldap_uri ldap://127.0.0.1:389 ldaps://10.0.0.2:636\n"
	    "ldap_starttls yes\n"
	    "ldap_bind_dn cn=proxy,ou=Service Accounts,dc=example,dc=com\n"
	    "ldap_bind_password_file ldap.secret\n"
	    "ldap_user_base ou=people,dc=example,dc=com\n"
	    "ldap_user_filter (&(objectClass=person)(uid=%u))\n"
	    "ldap_group_base \"ou=groups,dc=example,dc=com\"\n"
	    "ldap_group_filter (member=%d)   # comment\n"
	    "ldap_group_attr cn\n"
	    "ldap_user_attr sAMAccountName\n"
	    "ldap_tls_ca_file ca.pem\n"
	    "ldap_timeout 7\n"
	    "auth_realm Corporate egress\n"
	    "auth_cache_ttl 600\n"
	    "auth_negative_ttl 0\n"
	    "audit_syslog_socket /dev/log\n"
	    "audit_facility local3\n"
	    "audit_tag egressd-prod_1.2\n"
	    "audit_on_failure deny\n"
	    "audit_stderr yes\n"
	    "admin_socket run/admin.sock\n"
	    "metrics_listen 127.0.0.1:9128\n"
	    "connect_timeout 11\n"
	    "idle_timeout 301\n"
	    "sni_timeout 12\n"
	    "header_timeout 31\n"
	    "shutdown_grace 0\n"
	    "max_connections 1000000\n");
	struct sockaddr_in *sin;
	char want[256];

	assert_int_equal(c->nlisten, 3);
	assert_int_equal(c->listen[1].addr.ss_family, AF_INET6);
	assert_string_equal(c->listen[1].text, "[::1]:3128");
	assert_false(c->listen[1].proxy_protocol);
	assert_true(c->listen[2].proxy_protocol);
	sin = (struct sockaddr_in *)&c->listen[2].addr;
	assert_int_equal(ntohs(sin->sin_port), 3129);
	assert_int_equal(c->workers, 4);
	assert_string_equal(c->policy_file, "/etc/egressd/policy.rules");
	assert_string_equal(c->policy_path, "/etc/egressd/policy.rules");
	snprintf(want, sizeof(want), "%s/hosts", dir);
	assert_string_equal(c->dns_hosts_file, want);
	assert_string_equal(c->dns_resolv_conf, "/etc/resolv.conf");
	assert_int_equal(c->nallow_internal, 3);
	assert_int_equal(c->allow_internal[1].family, AF_INET);
	assert_int_equal(c->allow_internal[1].prefix, 16);
	assert_int_equal(c->allow_internal[2].family, AF_INET6);
	assert_int_equal(c->auth, CONFIG_AUTH_LDAP);
	assert_int_equal(c->nldap_uri, 2);
	assert_string_equal(c->ldap_uri[0], "ldap://127.0.0.1:389");
	assert_string_equal(c->ldap_uri[1], "ldaps://10.0.0.2:636");
	assert_true(c->ldap_starttls);
	assert_string_equal(c->ldap_bind_dn, "cn=proxy,ou=Service Accounts,dc=example,dc=com");
	snprintf(want, sizeof(want), "%s/ldap.secret", dir);
	assert_string_equal(c->ldap_bind_password_file, want);
	assert_string_equal(c->ldap_user_base, "ou=people,dc=example,dc=com");
	assert_string_equal(c->ldap_user_filter, "(&(objectClass=person)(uid=%u))");
	assert_string_equal(c->ldap_group_base, "ou=groups,dc=example,dc=com");
	assert_string_equal(c->ldap_group_filter, "(member=%d)");
	assert_string_equal(c->ldap_group_attr, "cn");
	assert_string_equal(c->ldap_user_attr, "sAMAccountName");
	snprintf(want, sizeof(want), "%s/ca.pem", dir);
	assert_string_equal(c->ldap_tls_ca_file, want);
	assert_true(c->audit_stderr);
	assert_int_equal(c->ldap_timeout, 7);
	assert_string_equal(c->auth_realm, "Corporate egress");
	assert_int_equal(c->auth_cache_ttl, 600);
	assert_int_equal(c->auth_negative_ttl, 0);
	assert_string_equal(c->audit_syslog_socket, "/dev/log");
	assert_int_equal(c->audit_facility, 19);
	assert_string_equal(c->audit_tag, "egressd-prod_1.2");
	assert_true(c->audit_on_failure_deny);
	snprintf(want, sizeof(want), "%s/run/admin.sock", dir);
	assert_string_equal(c->admin_socket, want);
	assert_true(c->has_metrics_listen);
	assert_int_equal(c->metrics_listen.ss_family, AF_INET);
	assert_int_equal(c->metrics_listen_len, sizeof(struct sockaddr_in));
	assert_int_equal(c->connect_timeout, 11);
	assert_int_equal(c->idle_timeout, 301);
	assert_int_equal(c->sni_timeout, 12);
	assert_int_equal(c->header_timeout, 31);
	assert_int_equal(c->shutdown_grace, 0);
	assert_int_equal(c->max_connections, 1000000);
	config_free(c);
}

static void
test_relative_paths_without_folder(void **state)
{
	static const char text[] = BASE "dns_resolv_conf ../resolv.conf\n";

	char cwd[512], *err = NULL;
	struct config *c;

	write_conf(text, strlen(text));
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	c = config_load("egressd.conf", &err);
	assert_int_equal(chdir(cwd), 0);
	assert_non_null(c);
	assert_string_equal(c->path, "egressd.conf");
	assert_string_equal(c->policy_path, "policy.rules");
	assert_string_equal(c->dns_resolv_conf, "../resolv.conf");
	config_free(c);
}

static void
test_numbers(void **state)
{
	static const struct {
		const char *key;
		long min, max;
	} keys[] = {
		{ "ldap_timeout", 1, 300 },
		{ "auth_cache_ttl", 0, 86400 },
		{ "auth_negative_ttl", 0, 86400 },
		{ "connect_timeout", 1, 86400 },
		{ "idle_timeout", 1, 86400 },
		{ "sni_timeout", 1, 86400 },
		{ "header_timeout", 1, 86400 },
		{ "shutdown_grace", 0, 86400 },
		{ "max_connections", 1, 1000000 },
		{ "workers", 1, 256 },
	};
	char line[128], msg[128];
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(line, sizeof(line), "%s %ld", keys[i].key, keys[i].min);
		good_line(line);
		snprintf(line, sizeof(line), "%s %ld", keys[i].key, keys[i].max);
		good_line(line);
		snprintf(line, sizeof(line), "%s %ld", keys[i].key, keys[i].max + 1);
		snprintf(msg, sizeof(msg), "%s: %ld is out of range (%ld-%ld)", keys[i].key,
		    keys[i].max + 1, keys[i].min, keys[i].max);
		bad_line(line, msg);
		if (keys[i].min > 0) {
			snprintf(line, sizeof(line), "%s %ld", keys[i].key, keys[i].min - 1);
			snprintf(msg, sizeof(msg), "%s: %ld is out of range", keys[i].key,
			    keys[i].min - 1);
			bad_line(line, msg);
		}
		snprintf(line, sizeof(line), "%s", keys[i].key);
		snprintf(msg, sizeof(msg), "missing value for \"%s\"", keys[i].key);
		bad_line(line, msg);
		snprintf(line, sizeof(line), "%s 5 6", keys[i].key);
		snprintf(msg, sizeof(msg), "too many values for \"%s\"", keys[i].key);
		bad_line(line, msg);
	}
	bad_line("connect_timeout -1", "connect_timeout: \"-1\" is not a number");
	bad_line("connect_timeout +5", "connect_timeout: \"+5\" is not a number");
	bad_line("connect_timeout 0x10", "connect_timeout: \"0x10\" is not a number");
	bad_line("connect_timeout 1e3", "connect_timeout: \"1e3\" is not a number");
	bad_line("connect_timeout 10s", "connect_timeout: \"10s\" is not a number");
	bad_line("connect_timeout 99999999999999999999999",
	    "connect_timeout: 99999999999999999999999 is out of range");
	bad_line("workers many", "workers: \"many\" is not a number");
	good_line("workers auto");
}

static void
test_each_key_bad(void **state)
{
	bad_line("listen", "missing value for \"listen\"");
	bad_line("listen 127.0.0.1", "listen: bad address \"127.0.0.1\"");
	bad_line("listen localhost:3128", "listen: bad address \"localhost:3128\"");
	bad_line("listen ::1:3128", "listen: bad address \"::1:3128\"");
	bad_line("listen 127.0.0.1:0", "listen: bad address \"127.0.0.1:0\"");
	bad_line("listen 127.0.0.1:3130 proxy", "listen: unknown flag \"proxy\"");
	bad_line("listen 127.0.0.1:3130 proxy_protocol x", "listen: unknown flag \"x\" (expected "
	    "proxy_protocol or tls)");
	bad_line("listen 127.0.0.1:3130 proxy_protocol tls x", "too many values for \"listen\"");
	bad_line("listen 127.0.0.1:3128", "listen: 127.0.0.1:3128 is already a listen address");
	expect_error_at("listen 127.0.0.1:3128\npolicy_file\n", 2,
	    "missing value for \"policy_file\"");
	bad_line("allow_internal 10.0.0.1/8", "allow_internal: bad range \"10.0.0.1/8\"");
	bad_line("allow_internal 10.0.0.0/33", "allow_internal: bad range");
	bad_line("allow_internal nothing", "allow_internal: bad range");
	bad_line("auth kerberos", "auth: bad value \"kerberos\" (expected ldap or none)");
	bad_line("ldap_uri http://x", "ldap_uri: \"http://x\" is not an ldap:// or ldaps:// URI");
	bad_line("ldap_uri ldap://a ldap://b ldap://c ldap://d ldap://e ldap://f ldap://g "
	    "ldap://h ldap://i", "too many values for \"ldap_uri\" (at most 8)");
	bad_line("ldap_uri", "missing value for \"ldap_uri\"");
	bad_line("ldap_starttls true", "ldap_starttls: bad value \"true\" (expected yes or no)");
	bad_line("audit_stderr 1", "audit_stderr: bad value \"1\" (expected yes or no)");
	bad_line("ldap_bind_dn", "missing value for \"ldap_bind_dn\"");
	bad_line("ldap_bind_dn \"cn=a", "ldap_bind_dn: missing closing '\"'");
	bad_line("ldap_bind_dn \"cn=a\" x", "ldap_bind_dn: unexpected text after the closing");
	bad_line("ldap_user_base \"\"", "missing value for \"ldap_user_base\"");
	bad_line("ldap_user_filter (uid=%s)", "ldap_user_filter: unknown \"%s\" in filter");
	bad_line("ldap_user_filter (uid=bob)", "ldap_user_filter: filter \"(uid=bob)\" must "
	    "contain %u");
	bad_line("ldap_user_filter uid=%u", "ldap_user_filter: \"uid=%u\" is not an LDAP "
	    "filter in parentheses");
	bad_line("ldap_group_filter (member=%u)", "ldap_group_filter: unknown \"%u\"");
	bad_line("ldap_group_filter (member=x)",
	    "ldap_group_filter: filter \"(member=x)\" must contain %d");
	bad_line("ldap_group_attr c n", "too many values for \"ldap_group_attr\"");
	bad_line("ldap_group_attr c(n", "ldap_group_attr: bad attribute name \"c(n\"");
	bad_line("auth_realm", "missing value for \"auth_realm\"");
	bad_line("auth_realm a\\b", "auth_realm: must not contain '\\'");
	bad_line("auth_realm a\"b", "auth_realm: value must not contain '\"'");
	bad_line("auth_realm a\tb", "auth_realm: value must not contain control characters");
	bad_line("audit_facility local8", "audit_facility: unknown facility \"local8\"");
	bad_line("audit_facility LOCAL5", "audit_facility: unknown facility \"LOCAL5\"");
	bad_line("audit_tag egress/d", "audit_tag: bad tag \"egress/d\"");
	bad_line("audit_tag 123456789012345678901234567890123", "audit_tag: bad tag");
	bad_line("audit_on_failure block", "audit_on_failure: bad value \"block\"");
	bad_line("admin_socket /run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock",
	    "admin_socket: path \"/run/aaaa");
	bad_line("metrics_listen 9128", "metrics_listen: bad address \"9128\"");
	bad_line("metrics_listen 127.0.0.1:3128",
	    "metrics_listen: 127.0.0.1:3128 is also a listen address");
	bad_line("bogus_key 1", "unknown key \"bogus_key\"");
	bad_line("Listen 127.0.0.1:1", "unknown key \"Listen\"");
}

/* user and group: names only (existence is config_check's), group needs user. */
static void
test_user_group(void **state)
{
	struct config *c;

	c = load_ok(BASE "user egressd\ngroup adm\n");
	assert_string_equal(c->user, "egressd");
	assert_string_equal(c->group, "adm");
	config_free(c);
	c = load_ok(BASE);
	assert_null(c->user);
	assert_null(c->group);
	config_free(c);
	good_line("user _svc.egress-1");
	bad_line("user", "missing value for \"user\"");
	bad_line("user a b", "too many values for \"user\"");
	bad_line("user -rf", "user: bad user name \"-rf\"");
	bad_line("user eg/ressd", "user: bad user name \"eg/ressd\"");
	bad_line("user aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "user: bad user name");
	expect_error_at(BASE "user egressd\ngroup a:b\n", 4, "group: bad group name \"a:b\"");
	expect_error_at(BASE "group egressd\n", 3, "group needs \"user\"");
	expect_error_at(BASE "user a\nuser b\n", 4, "\"user\" given twice");
}

static void
test_each_key_good(void **state)
{
	static const char *const facilities[] = { "kern", "user", "mail", "daemon", "auth",
	    "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "local0", "local1",
	    "local2", "local3", "local4", "local5", "local6", "local7" };
	static const int codes[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20,
	    21, 22, 23 };
	char text[256];
	struct config *c;
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		snprintf(text, sizeof(text), BASE "audit_facility %s\n", facilities[i]);
		c = load_ok(text);
		assert_int_equal(c->audit_facility, codes[i]);
		config_free(c);
	}
	good_line("audit_tag 12345678901234567890123456789012");
	good_line("ldap_starttls no");
	good_line("audit_on_failure allow");
	good_line("auth none");
	good_line("ldap_uri LDAPS://dc1.example.com");
	good_line("allow_internal ::1");
	good_line("listen [::]:8080 proxy_protocol");
	good_line("metrics_listen [::1]:9128");
	good_line("ldap_group_attr memberOf;binary");

	c = load_ok(BASE "auth_realm \"Corp # 1  proxy\"   # the realm\n");
	assert_string_equal(c->auth_realm, "Corp # 1  proxy");
	config_free(c);
	c = load_ok(BASE "auth_realm   Corp  egress#1   # comment\n");
	assert_string_equal(c->auth_realm, "Corp  egress#1");
	config_free(c);
	c = load_ok(BASE "ldap_user_base cn=#04024869,dc=example\n");
	assert_string_equal(c->ldap_user_base, "cn=#04024869,dc=example");
	config_free(c);
}

static void
test_repeats(void **state)
{
	struct config *c;
	char text[4096];
	size_t i, len;

	expect_error_at(BASE "workers 2\n\nworkers 3\n", 5,
	    "\"workers\" given twice (first at line 3)");
	expect_error_at(BASE "policy_file other.rules\n", 3,
	    "\"policy_file\" given twice (first at line 2)");
	expect_error_at(BASE "auth_realm a\nauth_realm b\n", 4, "\"auth_realm\" given twice");
	expect_error_at(BASE "ldap_uri ldap://a\nldap_uri ldap://b\n", 4,
	    "\"ldap_uri\" given twice");

	c = load_ok(BASE "listen 127.0.0.1:3129\nallow_internal 127.0.0.1\n"
	    "allow_internal 127.0.0.2\n");
	assert_int_equal(c->nlisten, 2);
	assert_int_equal(c->nallow_internal, 2);
	config_free(c);

	len = (size_t)snprintf(text, sizeof(text), "policy_file p\n");
	for (i = 0; i < CONFIG_LISTEN_MAX + 1; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
		    "listen 127.0.0.1:%zu\n", 1000 + i);
	expect_error_at(text, CONFIG_LISTEN_MAX + 2, "listen: more than 16 listen addresses");
}

static void
test_required(void **state)
{
	expect_error_at("", 0, "missing required key \"listen\"");
	expect_error_at("", 0, "missing required key \"policy_file\"");
	expect_error_at("listen 127.0.0.1:3128\n", 0, "missing required key \"policy_file\"");
	expect_error_at("policy_file p\n", 0, "missing required key \"listen\"");
	expect_error_at(BASE "\nauth ldap\n", 4, "auth ldap needs \"ldap_uri\"");
	expect_error_at(BASE "\nauth ldap\n", 4, "auth ldap needs \"ldap_user_base\"");
	expect_error_at(BASE "auth ldap\nldap_uri ldap://x\n", 3,
	    "auth ldap needs \"ldap_user_base\"");
	config_free(load_ok(BASE "auth ldap\nldap_uri ldap://x\nldap_user_base dc=x\n"));
	expect_error_at(BASE "ldap_bind_dn cn=x\n", 3,
	    "ldap_bind_dn needs \"ldap_bind_password_file\"");
	expect_error_at(BASE "ldap_bind_password_file s\n", 3,
	    "ldap_bind_password_file needs \"ldap_bind_dn\"");
	/* A listen line with an error is not also "missing". */
	{
		char *err = load_bad("listen nowhere\npolicy_file p\n");

		assert_null(strstr(err, "missing required key"));
		free(err);
	}
}

static void
test_all_errors_reported(void **state)
{
	char *err = load_bad(
	    "# several mistakes, each on its own line\n"
	    "listen 127.0.0.1:3128\n"
	    "workers 0\n"
	    "policy_file policy.rules\n"
	    "frobnicate yes\n"
	    "\n"
	    "connect_timeout 100000\n"
	    "audit_facility local9\n"
	    "ldap_starttls\n"
	    "idle_timeout 5 6\n"
	    "workers 2\n");
	char want[256];
	static const struct {
		size_t line;
		const char *msg;
	} wants[] = {
		{ 3, "workers: 0 is out of range (1-256)" },
		{ 5, "unknown key \"frobnicate\"" },
		{ 7, "connect_timeout: 100000 is out of range (1-86400)" },
		{ 8, "audit_facility: unknown facility \"local9\"" },
		{ 9, "missing value for \"ldap_starttls\"" },
		{ 10, "too many values for \"idle_timeout\" (expected one)" },
		{ 11, "\"workers\" given twice (first at line 3)" },
	};
	size_t i, n = 0;
	const char *p;

	for (i = 0; i < sizeof(wants) / sizeof(wants[0]); i++) {
		snprintf(want, sizeof(want), "%s:%zu: %s", conf, wants[i].line, wants[i].msg);
		if (strstr(err, want) == NULL)
			fail_msg("want \"%s\" in:\n%s", want, err);
	}
	for (p = err; (p = strchr(p, '\n')) != NULL; p++)
		n++;
	assert_int_equal(n, sizeof(wants) / sizeof(wants[0]));
	free(err);
}

static void
test_lexical(void **state)
{
	struct config *c;
	char *err = NULL;
	static const char nul[] = BASE "workers 2\0junk\n";

	/* Comments, blank lines, tabs, CRLF. */
	c = load_ok("# comment\r\n\r\n\t listen\t127.0.0.1:3128   # trailing\r\n"
	    "policy_file policy.rules#x\r\n   # indented comment\n");
	assert_int_equal(c->nlisten, 1);
	assert_string_equal(c->policy_file, "policy.rules#x");
	config_free(c);

	c = load_ok(BASE "workers 2 # comment\n");
	assert_int_equal(c->workers, 2);
	config_free(c);

	bad_line("workers \x01", "control character 0x01 in line");
	write_conf(nul, sizeof(nul) - 1);
	assert_null(config_load(conf, &err));
	assert_non_null(strstr(err, ":3: NUL byte in line"));
	free(err);
}

static void
test_bad_file(void **state)
{
	char *err = NULL, path[256];

	snprintf(path, sizeof(path), "%s/absent.conf", dir);
	assert_null(config_load(path, &err));
	assert_non_null(strstr(err, "absent.conf: cannot open: No such file or directory"));
	free(err);
	assert_null(config_load(dir, &err));
	assert_non_null(strstr(err, ": not a regular file"));
	free(err);
}

/* listen ... tls, the pair it needs, tls_min_version, auth_require_tls. */
static void
test_tls_keys(void **state)
{
	struct config *c;
	char want[512];

	c = load_ok(BASE "listen 127.0.0.1:3129 tls\nlisten 127.0.0.1:3130 tls proxy_protocol\n"
	    "listen 127.0.0.1:3131 proxy_protocol tls\ntls_cert_file proxy.pem\n"
	    "tls_key_file /etc/egressd/proxy.key\n");
	assert_false(c->listen[0].tls);
	assert_true(c->listen[1].tls);
	assert_false(c->listen[1].proxy_protocol);
	assert_true(c->listen[2].tls && c->listen[2].proxy_protocol);
	assert_true(c->listen[3].tls && c->listen[3].proxy_protocol);
	snprintf(want, sizeof(want), "%s/proxy.pem", dir);
	assert_string_equal(c->tls_cert_file, want);
	assert_string_equal(c->tls_key_file, "/etc/egressd/proxy.key");
	assert_int_equal(c->tls_min_version, 12);
	assert_false(c->auth_require_tls);
	config_free(c);

	c = load_ok(BASE "tls_min_version 1.3\nauth_require_tls yes\n");
	assert_int_equal(c->tls_min_version, 13);
	assert_true(c->auth_require_tls);
	config_free(c);

	bad_line("listen 127.0.0.1:3129 tls tls", "listen: flag \"tls\" given twice");
	bad_line("listen 127.0.0.1:3129 TLS", "listen: unknown flag \"TLS\"");
	bad_line("tls_min_version 1.1", "tls_min_version: bad value \"1.1\" (expected 1.2 or 1.3)");
	bad_line("tls_min_version 1.0", "tls_min_version: bad value");
	bad_line("auth_require_tls maybe", "auth_require_tls: bad value \"maybe\"");
	bad_line("listen 127.0.0.1:3129 tls", "listen 127.0.0.1:3129 tls needs \"tls_cert_file\"");
	bad_line("listen 127.0.0.1:3129 tls", "listen 127.0.0.1:3129 tls needs \"tls_key_file\"");
	bad_line("tls_cert_file a.pem", "tls_cert_file/tls_key_file: no listen address has tls");
	expect_error_at(BASE "listen 127.0.0.1:3129 tls\ntls_cert_file a.pem\n", 4,
	    "tls_cert_file needs \"tls_key_file\"");
}

/* proxy_protocol_from: ranges, repeatable, bounded, only with a PROXY listener. */
static void
test_proxy_protocol_from(void **state)
{
	struct config *c;
	char text[8192];
	size_t len, i;

	c = load_ok(BASE);
	assert_int_equal(c->nproxy_protocol_from, 0);
	config_free(c);
	c = load_ok(BASE "listen 127.0.0.1:3130 proxy_protocol\n"
	    "proxy_protocol_from 10.0.0.0/29\nproxy_protocol_from ::1\n"
	    "proxy_protocol_from 127.0.0.9\n");
	assert_int_equal(c->nproxy_protocol_from, 3);
	assert_int_equal(c->proxy_protocol_from[0].family, AF_INET);
	assert_int_equal(c->proxy_protocol_from[0].prefix, 29);
	assert_int_equal(c->proxy_protocol_from[1].family, AF_INET6);
	assert_int_equal(c->proxy_protocol_from[1].prefix, 128);
	assert_int_equal(c->proxy_protocol_from[2].prefix, 32);
	config_free(c);
	expect_error_at(BASE "listen 127.0.0.1:3130 proxy_protocol\n"
	    "proxy_protocol_from 10.0.0.1/29\n", 4,
	    "proxy_protocol_from: bad range \"10.0.0.1/29\"");
	expect_error_at(BASE "listen 127.0.0.1:3130 proxy_protocol\n"
	    "proxy_protocol_from lb.example\n", 4, "proxy_protocol_from: bad range");
	expect_error_at(BASE "listen 127.0.0.1:3130 proxy_protocol\n"
	    "proxy_protocol_from\n", 4, "missing value for \"proxy_protocol_from\"");
	expect_error_at(BASE "listen 127.0.0.1:3130 proxy_protocol\n"
	    "proxy_protocol_from 10.0.0.0/8 10.1.0.0/16\n", 4,
	    "too many values for \"proxy_protocol_from\"");
	/* Nothing to guard: the admin believes something is protected that is not. */
	bad_line("proxy_protocol_from 10.0.0.0/29",
	    "proxy_protocol_from: no listen address has proxy_protocol");
	/* At most CONFIG_PROXY_FROM_MAX, the next one is named by its line. */
	len = (size_t)snprintf(text, sizeof(text), BASE "listen 127.0.0.1:3130 proxy_protocol\n");
	for (i = 0; i <= CONFIG_PROXY_FROM_MAX; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
		    "proxy_protocol_from 10.0.%zu.0/24\n", i);
	expect_error_at(text, 4 + CONFIG_PROXY_FROM_MAX,
	    "proxy_protocol_from: more than 64 ranges");
}

/* auth_fail_per_client / auth_fail_per_user: defaults 20 and 5, 0 = off. */
static void
test_auth_fail_limits(void **state)
{
	struct config *c;

	c = load_ok(BASE);
	assert_int_equal(c->auth_fail_per_client, 20);
	assert_int_equal(c->auth_fail_per_user, 5);
	config_free(c);
	c = load_ok(BASE "auth_fail_per_client 0\nauth_fail_per_user 1000000\n");
	assert_int_equal(c->auth_fail_per_client, 0);
	assert_int_equal(c->auth_fail_per_user, 1000000);
	config_free(c);
	bad_line("auth_fail_per_client -1", "auth_fail_per_client: \"-1\" is not a number");
	bad_line("auth_fail_per_user 1000001", "auth_fail_per_user: 1000001 is out of range "
	    "(0-1000000)");
	bad_line("auth_fail_per_user five", "auth_fail_per_user: \"five\" is not a number");
	expect_error_at(BASE "auth_fail_per_user 3\nauth_fail_per_user 4\n", 4,
	    "\"auth_fail_per_user\" given twice (first at line 3)");
}

static void
test_audit_relp(void **state)
{
	struct config *c;

	c = load_ok(BASE);
	assert_null(c->audit_relp_host);
	config_free(c);
	c = load_ok(BASE "audit_relp 127.0.0.1:2514\n");
	assert_string_equal(c->audit_relp_host, "127.0.0.1");
	assert_int_equal(c->audit_relp_port, 2514);
	config_free(c);
	c = load_ok(BASE "audit_relp [::1]:65535\n");
	assert_string_equal(c->audit_relp_host, "::1");
	assert_int_equal(c->audit_relp_port, 65535);
	config_free(c);
	c = load_ok(BASE "audit_relp central-1.example.net:2515\n");
	assert_string_equal(c->audit_relp_host, "central-1.example.net");
	config_free(c);
	bad_line("audit_relp 127.0.0.1", "audit_relp: bad address \"127.0.0.1\"");
	bad_line("audit_relp :2514", "audit_relp: bad address \":2514\"");
	bad_line("audit_relp ::1:2514", "audit_relp: bad address \"::1:2514\"");
	bad_line("audit_relp [::1]2514", "audit_relp: bad address \"[::1]2514\"");
	bad_line("audit_relp a_b:1", "audit_relp: bad host in \"a_b:1\"");
	bad_line("audit_relp h:0", "audit_relp: bad port in \"h:0\" (1-65535)");
	bad_line("audit_relp h:65536", "audit_relp: bad port in \"h:65536\" (1-65535)");
	bad_line("audit_relp h:+1", "audit_relp: bad port in \"h:+1\" (1-65535)");
	expect_error_at(BASE "audit_relp h:1\naudit_relp h:2\n", 4,
	    "\"audit_relp\" given twice (first at line 3)");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_relative_paths_without_folder),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_each_key_bad),
		cmocka_unit_test(test_each_key_good),
		cmocka_unit_test(test_user_group),
		cmocka_unit_test(test_repeats),
		cmocka_unit_test(test_required),
		cmocka_unit_test(test_all_errors_reported),
		cmocka_unit_test(test_lexical),
		cmocka_unit_test(test_bad_file),
		cmocka_unit_test(test_proxy_protocol_from),
		cmocka_unit_test(test_tls_keys),
		cmocka_unit_test(test_auth_fail_limits),
		cmocka_unit_test(test_audit_relp),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
