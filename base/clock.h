/* The two clocks the modules use, in milliseconds. */
#ifndef BASE_CLOCK_H
#define BASE_CLOCK_H

#include <stdint.h>

/* Wall-clock time since the epoch: for what is stored, shown or compared
 * with other processes (the store's timestamps, leases, retry times). */
int64_t base_wall_ms(void);

/* A clock that never jumps: for durations, deadlines and timeouts within
 * this process. */
int64_t base_mono_ms(void);

#endif
