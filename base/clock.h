/* The two clocks the modules use, in milliseconds, and a swappable clock
 * (base_clock) for code whose tests must not wait for real time. */
#ifndef BASE_CLOCK_H
#define BASE_CLOCK_H

#include <stdint.h>

/* Wall-clock time since the epoch: for what is stored, shown or compared
 * with other processes (the store's timestamps, leases, retry times). */
int64_t base_wall_ms(void);

/* A clock that never jumps: for durations, deadlines and timeouts within
 * this process. */
int64_t base_mono_ms(void);

/* A clock as a struct of function pointers: the real one
 * (base_clock_system) or a test's, which can advance time instantly.
 * sleep_ms waits (or pretends to) for ms milliseconds. */
typedef struct base_clock {
	int64_t (*wall_ms)(void *payload);
	int64_t (*mono_ms)(void *payload);
	void (*sleep_ms)(void *payload, int64_t ms);
	void *payload;
} base_clock;

/* The system's clocks and a real sleep; static, never freed. */
const base_clock *base_clock_system(void);

#endif
