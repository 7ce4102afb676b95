/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt_time.c: the two clocks of the runtime.
 *
 * Wall-clock time stamps traces and write records (it is what an operator
 * asks recovery points by); the monotonic clock measures intervals (rate
 * limits, lag), which must not jump when the wall clock is set.
 */
#include <time.h>

#include "rt.h"

static uint64_t clock_us(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t rt_now_us(void)
{
    return clock_us(CLOCK_REALTIME);
}

uint64_t rt_mono_us(void)
{
    return clock_us(CLOCK_MONOTONIC);
}
