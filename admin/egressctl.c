/*
 * egressctl — the admin command line.
 *
 *   egressctl [-c CONF] check [--strict]
 *   egressctl [-c CONF] explain [--user U] [--group G]... --method M --host H --port P [--sni S]
 *   egressctl [-c CONF] status [--json]
 *   egressctl [-c CONF] tunnels [--sort age|bytes] [--json]
 *   egressctl [-c CONF] reload [--json]
 *
 * A command table (relayctl parser.c, tmux cmd_entry shape) maps each word to
 * its handler.  `-c CONF` may stand before or after the command; every
 * command takes --json where its output is more than one line.  The offline
 * commands read the configuration and the policy through the same pure parsers
 * the daemon uses, so "ok" here means ok there.  The commands that talk to
 * the running daemon (status, tunnels, reload; client.c) find it through the
 * configuration's admin_socket and speak its line protocol, nothing more.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/check.h"
#include "admin/client.h"

#define DEFAULT_CONF "/etc/egressd/egressd.conf"

struct command {
	const char *name;
	int (*run)(const char *conf, int argc, char **argv, bool json);
	const char *usage;
};

static const struct command commands[] = {
	{ "check", admin_check, "check [-c CONF] [--strict]" },
	{ "explain", admin_explain, "explain [-c CONF] [--user U] [--group G]... --method M "
	    "--host H --port P [--sni S] [--json]" },
	{ "status", admin_status, "status [-c CONF] [--json]" },
	{ "tunnels", admin_tunnels, "tunnels [-c CONF] [--sort age|bytes] [--json]" },
	{ "reload", admin_reload, "reload [-c CONF] [--json]" },
};

static void
usage(void)
{
	size_t i;

	fprintf(stderr, "usage:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(stderr, "  egressctl %s\n", commands[i].usage);
	fprintf(stderr, "  egressctl -V\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	const char *conf = DEFAULT_CONF, *cmd = NULL;
	char **rest;
	bool json = false;
	int i, nrest = 0;
	size_t k;

	if ((rest = calloc((size_t)argc + 1, sizeof(*rest))) == NULL)
		return 2;
	/* -c CONF and --json may appear anywhere; the first other word is the command. */
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0) {
			if (++i == argc)
				usage();
			conf = argv[i];
		} else if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
			printf("egressctl %s\n", EGRESSD_VERSION);
			return 0;
		} else if (cmd == NULL && argv[i][0] != '-')
			cmd = argv[i];
		else
			rest[nrest++] = argv[i];
	}
	if (cmd == NULL)
		usage();
	for (k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (strcmp(cmd, commands[k].name) == 0)
			return commands[k].run(conf, nrest, rest, json);
	fprintf(stderr, "egressctl: unknown command \"%s\"\n", cmd);
	usage();
}
