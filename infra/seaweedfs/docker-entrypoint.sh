#!/bin/sh
# Entry point of the object store image: write the S3 identities file from
# OBJECT_STORE_ACCESS_KEY / OBJECT_STORE_SECRET_KEY (or the files named by their *_FILE
# variants; readable by this user only, never on a command line), start `weed server` with S3
# on :8333 and data in /data, create the bucket OBJECT_STORE_BUCKET (default mlflow) if it is
# missing, wait until the master locates every volume on disk, then touch the ready file the
# healthcheck looks for. Any other command runs as is.
set -eu

if [ "${1:-}" != "weed-s3" ]; then
  exec "$@"
fi
shift

secret() { # secret NAME: the variable's value, or the content of the file NAME_FILE names
  eval "value=\${$1:-}"
  eval "file=\${$1_FILE:-}"
  if [ -z "$value" ] && [ -n "$file" ]; then
    [ -r "$file" ] || { echo "error: $1_FILE=$file is not a readable file" >&2; exit 1; }
    value="$(cat "$file")"
  fi
  if [ -z "$value" ]; then
    echo "error: set $1 (or $1_FILE): the object store does not start without S3 keys" >&2
    exit 1
  fi
  case "$value" in
    *[!A-Za-z0-9+/=._-]*)
      echo "error: $1 may hold only letters, digits and + / = . _ -" >&2
      exit 1
      ;;
  esac
  printf '%s' "$value"
}

access_key="$(secret OBJECT_STORE_ACCESS_KEY)"
secret_key="$(secret OBJECT_STORE_SECRET_KEY)"
bucket="${OBJECT_STORE_BUCKET:-mlflow}"
state=/run/mlops-s3
rm -f "$state/ready"
umask 077
# One identity with every right; without an identities file SeaweedFS would accept any key.
printf '{"identities": [{"name": "mlops", "credentials": [{"accessKey": "%s", "secretKey": "%s"}], "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}\n' \
  "$access_key" "$secret_key" >"$state/identities.json"
unset access_key secret_key OBJECT_STORE_ACCESS_KEY OBJECT_STORE_SECRET_KEY

# Master, volume server and filer on the loopback only; S3 on every interface of the
# container. Volumes of 1 GiB (not 30), as many as the disk allows.
weed server -dir=/data -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.volumeSizeLimitMB=1024 \
  -volume.max=0 -s3 -s3.port=8333 -s3.ip.bind=0.0.0.0 -s3.config="$state/identities.json" "$@" &
weed_pid=$!
trap 'kill -TERM "$weed_pid" 2>/dev/null; wait "$weed_pid"; exit 0' TERM INT

tries=0
until python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8333/healthz', timeout=2)" 2>/dev/null; do
  kill -0 "$weed_pid" 2>/dev/null || { echo "error: weed server exited during start" >&2; exit 1; }
  tries=$((tries + 1))
  [ "$tries" -lt 120 ] || { echo "error: S3 did not answer within 60 s" >&2; exit 1; }
  sleep 0.5
done
# Idempotent: the bucket is created only when the list (lines "  <name>\tsize:...") lacks
# it; retried while the filer and master finish starting.
bucket_listed() {
  printf 's3.bucket.list\n' | weed shell -master=127.0.0.1:9333 2>/dev/null \
    | awk -v name="$bucket" '$1 == name { found = 1 } END { exit !found }'
}
tries=0
until bucket_listed; do
  printf 's3.bucket.create -name %s\n' "$bucket" | weed shell -master=127.0.0.1:9333 >/dev/null 2>&1 || true
  tries=$((tries + 1))
  [ "$tries" -lt 30 ] || { echo "error: could not create the bucket $bucket" >&2; exit 1; }
  sleep 1
done
# After a restart S3 answers before the master knows the volumes already on disk (the
# volume server reports them in its next heartbeats): a read of an older object would be a
# 500 "volume N not found" for a second or more. Ready waits until the master locates every
# volume in /data (named <collection>_<id>.dat).
if ! python3 - <<'PY'
import glob, json, re, sys, time, urllib.request

ids = sorted({int(re.search(r"(\d+)\.dat$", p).group(1)) for p in glob.glob("/data/*.dat")})
deadline = time.monotonic() + 120
for volume in ids:
    while True:
        url = f"http://127.0.0.1:9333/dir/lookup?volumeId={volume}"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if json.load(answer).get("locations"):
                    break
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            sys.exit(f"error: the master does not locate volume {volume} after 120 s")
        time.sleep(0.5)
print(f"objectstore: the master locates all {len(ids)} volumes on disk")
PY
then
  exit 1
fi
echo "objectstore: S3 on :8333, bucket $bucket ready"
touch "$state/ready"
wait "$weed_pid"
