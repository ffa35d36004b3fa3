#!/bin/sh
# Make the master key (once) and the config readable by the service, then
# let systemd know about the unit. The key lives in /etc/callvault, outside
# the data directory, and reaches the service as a systemd credential.
set -e
chgrp callvault /etc/callvault/callvault.yaml 2>/dev/null || true
if [ ! -s /etc/callvault/master.key ]; then
  umask 077
  od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > /etc/callvault/master.key
  echo >> /etc/callvault/master.key
  chmod 0600 /etc/callvault/master.key
  echo "callvault: created master key /etc/callvault/master.key: back it up; without it recordings cannot be read"
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
  echo "callvault: start with 'systemctl enable --now callvault'"
fi
exit 0
