#!/bin/sh
# One-shot setup of MinIO for arkitekt (run by compose.yaml's minio-setup service, again on every
# `docker compose up`; each step may run twice): the bucket, a policy that allows everything on
# that bucket and nothing else, and the server's own user with that policy. The server signs its
# upload and read grants with this user's keys, so they can never reach beyond the bucket.
set -eu
: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${BUCKET:?}"
: "${SERVER_ACCESS_KEY_ID:?}" "${SERVER_SECRET_ACCESS_KEY:?}"

mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "local/$BUCKET"

policy=/tmp/arkitekt-bucket.json
cat >"$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:*"],
      "Resource": ["arn:aws:s3:::$BUCKET", "arn:aws:s3:::$BUCKET/*"]
    }
  ]
}
JSON
mc admin policy create local arkitekt-bucket "$policy"
# Adding an existing user sets its secret again: a changed secret in .env takes effect here.
mc admin user add local "$SERVER_ACCESS_KEY_ID" "$SERVER_SECRET_ACCESS_KEY" >/dev/null
# attach refuses a policy that is already attached ("... is already in effect"): that is fine.
if ! out=$(mc admin policy attach local arkitekt-bucket --user "$SERVER_ACCESS_KEY_ID" 2>&1); then
    case "$out" in
        *"already in effect"*) ;;
        *) echo "$out" >&2; exit 1 ;;
    esac
fi
echo "bucket $BUCKET ready; user $SERVER_ACCESS_KEY_ID limited to it"
