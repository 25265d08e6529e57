#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 15, both generators: test 30's scenario with an image whose
# initramfs is made by dracut (Debian 12's, replacing initramfs-tools in the
# image) with stagehand's dracut module 50stagehand in it.  The scenario and
# what each boot checks: scenario-boot-into-the-deployment.sh.
. "$(dirname "$0")/lib.sh"
. "$VM_DIR/scenario-boot-into-the-deployment.sh"

vm_scenario_boot_into_the_deployment dracut
