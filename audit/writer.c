/*
 * writer — where encoded audit records go.
 *
 * For now records are written to stderr, one per line as "audit {JSON}", with
 * one write(2) under a mutex so records from several workers never interleave.
 * The syslog transport (non-blocking datagrams, a bounded queue, loss
 * accounting) replaces this file's body; the interface in audit.h stays.
 */
#include "audit/audit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t audit_mtx = PTHREAD_MUTEX_INITIALIZER;

int
audit_open(const struct audit_config *cfg)
{
	(void)cfg;
	return 0;
}

void
audit_close(void)
{
}

bool
audit_available(void)
{
	return true;
}

void
audit_emit(const struct audit_event *ev)
{
	char *json, *line;
	size_t len;

	if ((json = audit_encode(ev)) == NULL)
		return;
	len = strlen(json);
	if ((line = malloc(len + 8)) != NULL) {
		memcpy(line, "audit ", 6);
		memcpy(line + 6, json, len);
		line[len + 6] = '\n';
		pthread_mutex_lock(&audit_mtx);
		(void)!write(STDERR_FILENO, line, len + 7);
		pthread_mutex_unlock(&audit_mtx);
		free(line);
	}
	free(json);
}
