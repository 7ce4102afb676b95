/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * demo.h: the embedded default's set-up (`noded --demo DIR`).
 *
 * A demo folder holds a complete two-appliance site on loopback: the site CA
 * and certificates (ca/), the protected disks as sparse images (disks/), the
 * primary appliance's config (primary.ini: agent + process server), the
 * secondary's (secondary.ini: master target; the configuration server joins
 * it when it exists), the console's (nodectl.ini, with the admin
 * certificate) and demo.env, the sourceable summary of DESIGN.md section 6.
 * demo.env is written last: its presence marks a complete demo folder,
 * which a later `noded --demo DIR` resumes as it is.
 */
#ifndef DEMO_H
#define DEMO_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#define DEMO_DISKS_MAX 16u
#define DEMO_DEFAULT_DISK_SIZE (256ull << 20)

/*! demo_prepare() : make the demo folder @dir with @disks disks of
 *  @disk_size bytes, or find the complete one already there (*resumed set;
 *  @disks and @disk_size are then ignored, and a notice says so when they
 *  differ from what the folder holds).
 *  @return 0, or -1 with a one-line reason in @err (nothing half-written is
 *  left that a later run would take for a complete demo). */
int demo_prepare(const char *dir, unsigned disks, uint64_t disk_size, bool *resumed, char *err,
                 size_t errlen);

/*! demo_conf_path() : "@dir/primary.ini" or "@dir/secondary.ini" into @out. */
void demo_conf_path(const char *dir, bool primary, char *out, size_t outlen);

#endif /* DEMO_H */
