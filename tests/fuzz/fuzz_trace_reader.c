/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz_trace_reader.c: libFuzzer target for nodetrace's reader: arbitrary
 * bytes as a trace file.
 *
 * A trace file that a crash cut short, a full disk, or a bad sector must
 * never crash the viewer people use to understand that crash. The input goes
 * through the whole path of a file: decode every record until the first
 * damaged one, merge, clock offsets, the clock adjustment, and both line
 * outputs; then the reader's own claims are checked (where it stopped lies
 * inside the input, every record before it was kept).
 */
#include <stdlib.h>

#include "tools/nodetrace/nt_filter.c"
#include "tools/nodetrace/nt_out.c"
#include "tools/nodetrace/nt_read.c"
#include "tools/nodetrace/nt_set.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    nt_set_t s;
    nt_stop_t st;
    nt_filter_t f = {.actor = "link:*", .has_since = true, .since_us = 1};

    if (!sink)
        sink = fopen("/dev/null", "w");
    if (nt_set_init(&s) != RT_OK)
        return 0;
    if (nt_load_buf(&s, data, size, &st) == RT_OK) {
        if (st.stopped && st.at >= size)
            abort(); /* a stop must point inside the input */
        if (st.records != s.n)
            abort();
        nt_set_sort(&s);
        for (size_t i = 1; i < s.n; i++)
            if (s.rec[i - 1].time_us > s.rec[i].time_us)
                abort();
        for (size_t i = 0; i < s.n && sink; i++) {
            nt_print_line(sink, &s, &s.rec[i], i & 1);
            nt_print_json(sink, &s, &s.rec[i]);
            (void)nt_filter_match(&s, &s.rec[i], &f);
        }
        if (sink)
            nt_print_offsets(sink, &s);
        nt_set_adjust_clock(&s);
    }
    nt_set_free(&s);
    return 0;
}
