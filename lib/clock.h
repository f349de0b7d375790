/*
 * clock — the program's two clocks, in one place.
 *
 * Every deadline, timeout and duration is measured on CLOCK_MONOTONIC, which
 * an operator's `date -s` or an NTP step cannot move: a wall-clock step must
 * neither cut a tunnel early nor keep it open for an hour.  The wall clock is
 * only for what is shown to people (record timestamps, "loaded at", ages
 * printed by egressctl).  Header-only and dependency-free, so every module,
 * audit/ and policy/ included, may use it.
 */
#ifndef EGRESSD_LIB_CLOCK_H
#define EGRESSD_LIB_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic milliseconds: deadlines, idle times, durations. */
static inline int64_t
clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic microseconds: latency histograms. */
static inline int64_t
clock_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Monotonic milliseconds at the kernel tick's resolution (a few ms), for
 * stamps taken on every byte move, where even a vDSO clock_gettime with full
 * resolution is measurable and idle timeouts in whole seconds need no more.
 */
static inline int64_t
clock_mono_coarse_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wall-clock milliseconds since the epoch: only for what people read. */
static inline int64_t
clock_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
