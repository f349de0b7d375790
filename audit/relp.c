/*
 * relp — one RELP client session through librelp (see relp.h).
 */
#include "audit/relp.h"

#include <librelp.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct relp_link {
	relpEngine_t *engine;
	relpClt_t *clt;                 /* NULL while not connected */
	char host[256];
	char port[8];
	char last_err[160];             /* librelp's last complaint, for the log */
};

static void relp_dbg(char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
relp_dbg(char *fmt, ...)
{
	(void)fmt;
}

/* librelp's error callback: keep the text for the outage line. */
static void
relp_on_err(void *usr, char *objinfo, char *msg, relpRetVal code)
{
	struct relp_link *l = usr;

	(void)objinfo;
	if (l == NULL)
		return;
	snprintf(l->last_err, sizeof(l->last_err), "%s (librelp %d)", msg, (int)code);
}

struct relp_link *
relp_link_new(const char *host, int port)
{
	struct relp_link *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	snprintf(l->host, sizeof(l->host), "%s", host);
	snprintf(l->port, sizeof(l->port), "%d", port);
	if (relpEngineConstruct(&l->engine) != RELP_RET_OK) {
		free(l);
		return NULL;
	}
	relpEngineSetDbgprint(l->engine, relp_dbg);
	{
		static unsigned char cmd[] = "syslog";

		relpEngineSetEnableCmd(l->engine, cmd, eRelpCmdState_Required);
	}
	relpEngineSetOnErr(l->engine, relp_on_err);
	return l;
}

void
relp_link_drop(struct relp_link *l)
{
	if (l->clt != NULL)
		relpEngineCltDestruct(l->engine, &l->clt);
	l->clt = NULL;
}

void
relp_link_free(struct relp_link *l)
{
	if (l == NULL)
		return;
	relp_link_drop(l);
	relpEngineDestruct(&l->engine);
	free(l);
}

static void
relp_reason(struct relp_link *l, relpRetVal r, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s %s:%s: %s", what, l->host, l->port,
	    l->last_err[0] != '\0' ? l->last_err : r == RELP_RET_TIMED_OUT ?
	    "timed out" : "session broken");
	l->last_err[0] = '\0';
}

int
relp_link_connect(struct relp_link *l, char *err, size_t errlen)
{
	relpRetVal r;

	relp_link_drop(l);
	l->last_err[0] = '\0';
	if ((r = relpEngineCltConstruct(l->engine, &l->clt)) != RELP_RET_OK) {
		l->clt = NULL;
		relp_reason(l, r, "cannot create a RELP client for", err, errlen);
		return -1;
	}
	relpCltSetUsrPtr(l->clt, l);
	relpCltSetTimeout(l->clt, RELP_ACK_TIMEOUT);
	relpCltSetConnTimeout(l->clt, RELP_CONNECT_TIMEOUT);
	relpCltSetWindowSize(l->clt, RELP_WINDOW);
	if ((r = relpCltConnect(l->clt, AF_UNSPEC, (unsigned char *)l->port,
	    (unsigned char *)l->host)) != RELP_RET_OK) {
		relp_reason(l, r, "cannot open a RELP session to", err, errlen);
		relpEngineCltDestruct(l->engine, &l->clt);
		l->clt = NULL;
		return -1;
	}
	return 0;
}

int
relp_link_send(struct relp_link *l, const char *msg, size_t len, char *err, size_t errlen)
{
	relpRetVal r;

	if (l->clt == NULL) {
		snprintf(err, errlen, "no RELP session to %s:%s", l->host, l->port);
		return -1;
	}
	r = relpCltSendSyslog(l->clt, (unsigned char *)(uintptr_t)msg, len);
	if (r != RELP_RET_OK) {
		relp_reason(l, r, "RELP session to", err, errlen);
		return -1;
	}
	return 0;
}
