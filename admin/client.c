/*
 * client — egressctl status / tunnels / reload: ask the running egressd.
 *
 * The daemon is found through the `admin_socket` of the configuration (the
 * same file it was started with), and spoken to with its line protocol:
 *
 *   > COMMAND LF
 *   < "ok" | "error" LF, payload lines (a leading "." doubled), "." LF, close
 *
 * Most of the care is in the failures an operator meets at 3 a.m.: no daemon
 * (no socket, or a socket nobody answers on), a socket they may not open, a
 * configuration without admin_socket, a daemon that stops answering halfway.
 * Each gets one line that says which, and a non-zero exit.
 */
#include "admin/client.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config/config.h"

#define ANSWER_MAX (64u * 1024 * 1024)  /* a daemon with very many tunnels */
#define ANSWER_TIMEOUT 30               /* seconds (a reload compiles the policy) */

/* The payload of an answer, and whether it was "ok". */
struct answer {
	bool ok;
	char *payload;                  /* lines, "\n"-terminated, un-stuffed */
};

static void
print_errors(const char *errors)
{
	fputs(errors, stderr);
	if (errors[0] != '\0' && errors[strlen(errors) - 1] != '\n')
		fputc('\n', stderr);
}

/* The admin_socket path of the configuration at conf (malloc'd), or NULL. */
static char *
socket_path(const char *conf)
{
	struct config *c;
	char *errors = NULL, *path;

	if ((c = config_load(conf, &errors)) == NULL) {
		if (errors != NULL)
			print_errors(errors);
		free(errors);
		return NULL;
	}
	if (c->admin_socket == NULL) {
		fprintf(stderr, "egressctl: %s has no admin_socket: the daemon cannot be asked "
		    "(add \"admin_socket /run/egressd/admin.sock\" and restart egressd)\n", conf);
		config_free(c);
		return NULL;
	}
	path = strdup(c->admin_socket);
	config_free(c);
	return path;
}

static int
dial(const char *path)
{
	struct sockaddr_un sun;
	struct timeval tv = { ANSWER_TIMEOUT, 0 };
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "egressctl: admin_socket path too long: %s\n", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		fprintf(stderr, "egressctl: socket: %s\n", strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return fd;
	switch (errno) {
	case ENOENT:
		fprintf(stderr, "egressctl: egressd is not running (no socket at %s)\n", path);
		break;
	case ECONNREFUSED:
		fprintf(stderr, "egressctl: egressd is not running (no socket at %s: "
		    "the file is left from an earlier run, nothing answers on it)\n", path);
		break;
	case EACCES:
	case EPERM:
		fprintf(stderr, "egressctl: cannot open %s: permission denied (run as root or "
		    "as a member of the socket's group)\n", path);
		break;
	default:
		fprintf(stderr, "egressctl: cannot connect to egressd at %s: %s\n", path,
		    strerror(errno));
	}
	close(fd);
	return -1;
}

/* Send request, read the whole answer and decode it.  -1 after a message. */
static int
ask(const char *conf, const char *request, struct answer *a)
{
	char *path, *buf = NULL, *line, *next, *out;
	size_t len = 0, cap = 0;
	bool done = false, first = true;
	ssize_t n;
	int fd;

	memset(a, 0, sizeof(*a));
	if ((path = socket_path(conf)) == NULL)
		return -1;
	fd = dial(path);
	free(path);
	if (fd == -1)
		return -1;
	if (send(fd, request, strlen(request), MSG_NOSIGNAL) == -1 ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) == -1) {
		fprintf(stderr, "egressctl: cannot send to egressd: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *nb;

			cap = cap == 0 ? 65536 : cap * 2;
			if (cap > ANSWER_MAX || (nb = realloc(buf, cap)) == NULL) {
				fprintf(stderr, "egressctl: answer from egressd too large\n");
				goto fail;
			}
			buf = nb;
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n == 0)
			break;
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "egressctl: no complete answer from egressd: %s\n",
			    errno == EAGAIN ? "timed out" : strerror(errno));
			goto fail;
		}
		len += (size_t)n;
	}
	close(fd);
	fd = -1;
	if (buf == NULL)
		goto short_answer;
	buf[len] = '\0';

	/* Decode in place: the status line, payload lines, the final ".". */
	out = buf;
	for (line = buf; line < buf + len && !done; line = next) {
		char *nl = strchr(line, '\n');

		if (nl == NULL)
			break;          /* a line cut short: the answer is incomplete */
		*nl = '\0';
		next = nl + 1;
		if (first) {
			if (strcmp(line, "ok") != 0 && strcmp(line, "error") != 0)
				break;
			a->ok = strcmp(line, "ok") == 0;
			first = false;
			continue;
		}
		if (strcmp(line, ".") == 0) {
			done = true;
			break;
		}
		if (line[0] == '.')
			line++;
		memmove(out, line, strlen(line));
		out += strlen(line);
		*out++ = '\n';
	}
	if (!done)
		goto short_answer;
	*out = '\0';
	a->payload = buf;
	return 0;
short_answer:
	fprintf(stderr, "egressctl: incomplete answer from egressd (did it stop?)\n");
fail:
	if (fd != -1)
		close(fd);
	free(buf);
	return -1;
}

static int
no_args(const char *cmd, int argc)
{
	if (argc == 0)
		return 0;
	fprintf(stderr, "usage: egressctl %s [-c CONF] [--json]\n", cmd);
	return -1;
}

int
admin_status(const char *conf, int argc, char **argv, bool json)
{
	struct answer a;

	(void)argv;
	if (no_args("status", argc) == -1)
		return 2;
	if (ask(conf, json ? "status json" : "status", &a) == -1)
		return 1;
	fputs(a.payload, a.ok ? stdout : stderr);
	free(a.payload);
	return a.ok ? 0 : 1;
}

int
admin_reload(const char *conf, int argc, char **argv, bool json)
{
	struct json_object *o, *errs;
	struct answer a;
	char *line, *save = NULL;

	(void)argv;
	if (argc != 0) {
		fprintf(stderr, "usage: egressctl reload [-c CONF] [--json]\n");
		return 2;
	}
	if (ask(conf, "reload", &a) == -1)
		return 1;
	if (json) {
		o = json_object_new_object();
		json_object_object_add(o, "ok", json_object_new_boolean(a.ok));
		errs = json_object_new_array();
		for (line = strtok_r(a.payload, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save)) {
			if (a.ok)
				json_object_object_add(o, "result", json_object_new_string(line));
			else
				json_object_array_add(errs, json_object_new_string(line));
		}
		json_object_object_add(o, "errors", errs);
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	} else
		fputs(a.payload, a.ok ? stdout : stderr);
	free(a.payload);
	return a.ok ? 0 : 1;
}

/* ---- tunnels -------------------------------------------------------------- */

enum sort_key { SORT_NONE, SORT_AGE, SORT_BYTES };

static enum sort_key sort_key;

static int64_t
get_int(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static const char *
get_str(struct json_object *o, const char *key, const char *dflt)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || v == NULL)
		return dflt;
	return json_object_get_string(v);
}

/* Oldest first for age; most bytes (both ways) first for bytes. */
static int
cmp_tunnel(const void *pa, const void *pb)
{
	struct json_object *a = *(struct json_object *const *)pa;
	struct json_object *b = *(struct json_object *const *)pb;
	int64_t x, y;

	if (sort_key == SORT_BYTES) {
		x = get_int(a, "bytes_up") + get_int(a, "bytes_down");
		y = get_int(b, "bytes_up") + get_int(b, "bytes_down");
		return x < y ? 1 : x > y ? -1 : 0;
	}
	x = get_int(a, "start_ms");
	y = get_int(b, "start_ms");
	return x < y ? -1 : x > y ? 1 : 0;
}

static void
format_age(double secs, char *buf, size_t len)
{
	int64_t s = (int64_t)secs;

	if (s >= 86400)
		snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
	else
		snprintf(buf, len, "%" PRId64 "s", s);
}

int
admin_tunnels(const char *conf, int argc, char **argv, bool json)
{
	struct json_object *arr, *o, *v;
	struct answer a;
	char client[80], dest[300], age[32];
	size_t i, n;
	int j;

	sort_key = SORT_NONE;
	for (j = 0; j < argc; j++) {
		if (strcmp(argv[j], "--sort") == 0 && j + 1 < argc) {
			j++;
			if (strcmp(argv[j], "age") == 0)
				sort_key = SORT_AGE;
			else if (strcmp(argv[j], "bytes") == 0)
				sort_key = SORT_BYTES;
			else
				goto usage;
		} else
			goto usage;
	}
	if (ask(conf, "tunnels json", &a) == -1)
		return 1;
	if (!a.ok) {
		fputs(a.payload, stderr);
		free(a.payload);
		return 1;
	}
	arr = json_tokener_parse(a.payload);
	free(a.payload);
	if (arr == NULL || !json_object_is_type(arr, json_type_array)) {
		fprintf(stderr, "egressctl: egressd answered something that is not a list\n");
		json_object_put(arr);
		return 1;
	}
	if (sort_key != SORT_NONE)
		json_object_array_sort(arr, cmp_tunnel);
	n = json_object_array_length(arr);
	if (json) {
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
		json_object_put(arr);
		return 0;
	}
	printf("%-20s %-12s %-21s %-30s %-24s %8s %12s %12s\n", "ID", "USER", "CLIENT",
	    "HOST:PORT", "SNI", "AGE", "UP", "DOWN");
	for (i = 0; i < n; i++) {
		o = json_object_array_get_idx(arr, i);
		snprintf(client, sizeof(client), "%s:%" PRId64, get_str(o, "client_ip", "?"),
		    get_int(o, "client_port"));
		snprintf(dest, sizeof(dest), "%s:%" PRId64, get_str(o, "host", "?"),
		    get_int(o, "port"));
		format_age(json_object_object_get_ex(o, "age_seconds", &v) ?
		    json_object_get_double(v) : 0, age, sizeof(age));
		printf("%-20s %-12s %-21s %-30s %-24s %8s %12" PRId64 " %12" PRId64 "\n",
		    get_str(o, "id", "?"), get_str(o, "user", "-"), client, dest,
		    get_str(o, "sni", "-"), age, get_int(o, "bytes_up"), get_int(o, "bytes_down"));
	}
	json_object_put(arr);
	return 0;
usage:
	fprintf(stderr, "usage: egressctl tunnels [-c CONF] [--sort age|bytes] [--json]\n");
	return 2;
}
