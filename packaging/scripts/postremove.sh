#!/bin/sh
# Recordings (/var/lib/callvault) and the master key (/etc/callvault) are
# kept on remove and purge alike: deleting them is the admin's decision.
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
exit 0
