/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz_frame.c: libFuzzer target for the frame decoder (runtime/rt_frame.c).
 *
 * The input is treated as what a peer sends on a link: frames are decoded
 * one after another, as the link does, until the bytes run out or one is
 * bad. Besides "no crash, no read past the input" (ASan), it checks the
 * decoder's promises: "need more" asks for more than it was given, an error
 * always has a reason, and a header that decodes re-encodes to one that
 * decodes to the same body tag and payload length. Seeds are in
 * tests/fuzz/corpus/fuzz_frame/ (valid frames and each kind of bad one).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "link.pb.h"
#include "rt.h"

#define FUZZ_MAX_PAYLOAD (64u << 10)
#define FUZZ_MAX_FRAMES  64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    for (int i = 0; i < FUZZ_MAX_FRAMES && off < size; i++) {
        ss_Envelope env, again;
        rt_frame_t fr, fr2;
        uint8_t hdr[RT_FRAME_HDR_MAX];
        size_t hl = 0;

        int rc = rt_frame_decode(data + off, size - off, FUZZ_MAX_PAYLOAD, &env, &fr);
        if (rc == RT_AGAIN) {
            if (fr.need <= size - off)
                abort();
            break;
        }
        if (rc == RT_ERR) {
            if (!fr.why[0] || !memchr(fr.why, '\0', sizeof fr.why))
                abort();
            break;
        }
        if (rc != RT_OK || env.which_body == 0 || fr.payload_len > FUZZ_MAX_PAYLOAD ||
            fr.hdr_len + fr.payload_len > size - off)
            abort();
        if (rt_frame_encode_header(&env, env.payload_len, hdr, sizeof hdr, &hl) != RT_OK)
            abort();
        if (rt_frame_decode_header(hdr, hl, FUZZ_MAX_PAYLOAD, &again, &fr2) != RT_OK ||
            fr2.hdr_len != hl || again.which_body != env.which_body ||
            again.payload_len != env.payload_len || again.corr != env.corr)
            abort();
        off += fr.hdr_len + fr.payload_len;
    }
    return 0;
}
