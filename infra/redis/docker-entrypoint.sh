#!/bin/sh
# Entry point of the Redis image: write the password from REDIS_PASSWORD (or the file named by
# REDIS_PASSWORD_FILE) into a config file readable by this user only, then start redis-server
# with the image's config, which includes it. The password never appears on a command line
# (`ps`), in the image or in the log.
set -eu

if [ "${1:-}" != "redis-server" ]; then
  exec "$@"
fi

password="${REDIS_PASSWORD:-}"
if [ -z "$password" ] && [ -n "${REDIS_PASSWORD_FILE:-}" ]; then
  if [ ! -r "$REDIS_PASSWORD_FILE" ]; then
    echo "error: REDIS_PASSWORD_FILE=$REDIS_PASSWORD_FILE is not a readable file" >&2
    exit 1
  fi
  password="$(cat "$REDIS_PASSWORD_FILE")"
fi
if [ -z "$password" ]; then
  echo "error: set REDIS_PASSWORD (or REDIS_PASSWORD_FILE): Redis does not start without a password" >&2
  exit 1
fi
case "$password" in
  *'"'* | *'\'* | *"
"*)
    echo "error: the Redis password must not contain a double quote, a backslash or a newline" >&2
    exit 1
    ;;
esac

umask 077
printf 'requirepass "%s"\n' "$password" >/run/mlops-redis/auth.conf
unset password REDIS_PASSWORD
shift
exec redis-server /etc/redis/mlops.conf "$@"
