#!/bin/bash
# deploy/attestable-ami/kiwi/config.sh: append to the KIWI description's config.sh.
# Enables attest-agent at boot. Its configuration (root/etc/attest/agent.json) is
# in the read-only root, so it is part of what PCR4/PCR12 measure: change it and
# register the new pcr_measurements.json (attestctl policy import).
set -euo pipefail
systemctl enable attest-agent.service
