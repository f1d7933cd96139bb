/* Millisecond clocks; see clock.h. */
#include "base/clock.h"

#include <errno.h>
#include <time.h>

static int64_t ms_of(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t base_wall_ms(void)
{
	return ms_of(CLOCK_REALTIME);
}

int64_t base_mono_ms(void)
{
	return ms_of(CLOCK_MONOTONIC);
}

static int64_t sys_wall(void *payload)
{
	(void)payload;
	return base_wall_ms();
}

static int64_t sys_mono(void *payload)
{
	(void)payload;
	return base_mono_ms();
}

static void sys_sleep(void *payload, int64_t ms)
{
	(void)payload;
	if (ms <= 0)
		return;
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static const base_clock SYSTEM_CLOCK = { sys_wall, sys_mono, sys_sleep, NULL };

const base_clock *base_clock_system(void)
{
	return &SYSTEM_CLOCK;
}
