#!/usr/bin/env bash
# make demo: the cross-account push end to end, on 127.0.0.1 only.
# Starts moto_server as the task account (111111111111) and the log account (222222222222),
# ships N unique lines with the issue's [OUTPUT] block — through a real `fluent-bit` when one
# is on PATH, else through the test host — and prints what landed in the log account.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${DEMO_RECORDS:-1000}
work=$(mktemp -d /tmp/cwrs-demo.XXXXXX)
py=.venv/bin/python
fixture=tests/support/moto_fixture.py
state=$work/moto.json
trap '$py $fixture stop --state $state 2>/dev/null || true' EXIT

echo "== starting moto_server (IAM auth on) with the two accounts"
$py $fixture start --state "$state"
field() { $py -c "import json,sys; d=json.load(open('$state')); print(eval('d'+sys.argv[1]))" "$1"; }
endpoint=$(field "['endpoint']")

for i in $(seq 1 "$N"); do echo "demo line $i of $N"; done > "$work/app.log"
cat > "$work/fluent-bit.conf" <<CONF
[SERVICE]
    Flush     1
    Grace     5
    Log_Level info

[INPUT]
    Name           tail
    Path           $work/app.log
    Tag            app
    Read_from_Head On
    Exit_On_Eof    On

[OUTPUT]
    Name              cloudwatch_rs
    Match             *
    region            us-east-1
    Log_Group_Name    cross-account-example
    Log_Stream_Prefix example-
    Auto_Create_Group On
    Role_Arn          arn:aws:iam::222222222222:role/cross-account-log-role
    # the local stand-ins for the AWS endpoints
    endpoint          $endpoint
    sts_endpoint      $endpoint
CONF

# The task account's credentials, as the task role would provide them; nothing else.
export AWS_ACCESS_KEY_ID=$(field "['task']['access_key_id']")
export AWS_SECRET_ACCESS_KEY=$(field "['task']['secret_access_key']")
export AWS_EC2_METADATA_DISABLED=true
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE

if command -v fluent-bit >/dev/null 2>&1; then
  echo "== running $(fluent-bit --version | head -1) with -e $PWD/target/release/libcloudwatch_rs.so"
  timeout 60 fluent-bit -e "$PWD/target/release/libcloudwatch_rs.so" -c "$work/fluent-bit.conf" 2>&1 \
    | grep -E 'cloudwatch_rs|error|warn' || true
else
  echo "== no fluent-bit on PATH: running the config through the test host (loads the .so as Fluent Bit does)"
  target/release/cwrs-test-host -e "$PWD/target/release/libcloudwatch_rs.so" -c "$work/fluent-bit.conf"
fi

echo "== what landed in log group cross-account-example of account 222222222222 (read as its reader)"
$py $fixture read --state "$state" --group cross-account-example > "$work/landed.jsonl"
$py - "$work/landed.jsonl" "$work/app.log" <<'PY'
import json, sys, collections
events = [json.loads(l) for l in open(sys.argv[1])]
sent = [l.rstrip("\n") for l in open(sys.argv[2])]
got = collections.Counter(json.loads(e["message"])["log"] for e in events)
streams = sorted({e["stream"] for e in events})
missing = [l for l in sent if got[l] == 0]
dups = sum(c - 1 for c in got.values() if c > 1)
print(f"streams: {streams}")
for e in events[:3]:
    print(f"  {e['stream']} {e['timestamp']} {e['message']}")
print(f"sent {len(sent)} records, received {len(events)} events: {len(sent) - len(missing)} matched, "
      f"{len(missing)} missing, {dups} duplicates")
sys.exit(0 if not missing and not dups else 1)
PY
