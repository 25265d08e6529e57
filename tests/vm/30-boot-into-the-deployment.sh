#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 15: the next boot runs the staged image, not just its kernel, with
# an image whose initramfs is made by its own mkinitramfs (initramfs-tools,
# with stagehand's hook and boot script in it).  Test 32 is the same with
# dracut.  The scenario and what each boot checks:
# scenario-boot-into-the-deployment.sh.
. "$(dirname "$0")/lib.sh"
. "$VM_DIR/scenario-boot-into-the-deployment.sh"

vm_scenario_boot_into_the_deployment initramfs-tools
