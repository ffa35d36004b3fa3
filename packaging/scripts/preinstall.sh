#!/bin/sh
# Create the callvault system user and group before the files land.
set -e
if ! getent group callvault >/dev/null; then
  if command -v addgroup >/dev/null 2>&1; then addgroup --system callvault; else groupadd --system callvault; fi
fi
if ! getent passwd callvault >/dev/null; then
  if command -v adduser >/dev/null 2>&1; then
    adduser --system --ingroup callvault --home /var/lib/callvault --no-create-home --shell /usr/sbin/nologin callvault
  else
    useradd --system --gid callvault --home-dir /var/lib/callvault --no-create-home --shell /sbin/nologin callvault
  fi
fi
exit 0
