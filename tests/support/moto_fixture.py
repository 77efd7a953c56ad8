#!/usr/bin/env python3
"""moto_server as the two AWS accounts of the cross-account setup, on 127.0.0.1 only.

  start --state FILE [--port N]   start moto_server with IAM auth, create the accounts, write FILE (JSON)
  stop --state FILE               stop it
  read --state FILE --group G [--account A]
                                  print every event of log group G as JSON lines, read as the log
                                  account's reader (or account A's, a tenant's): {"stream", "timestamp", "message"}
  assumed --state FILE            print the AssumeRole calls moto served, by role ARN (JSON)

Task account 111111111111: IAM user `task`, allowed only sts:AssumeRole on the log role.
Log account 222222222222: role `cross-account-log-role` trusting `task`, allowed to write logs
(plugin-config/iam/cloudwatch-write.json when present); user `reader`, allowed to read logs.
With --tenants A,B,...: each of those accounts too has a role `log-writer` trusting `task` and
allowed to write logs, and a `reader`; `task` may assume any of them (one output, many log
accounts: only the plugin's role_arn_allowed decides which it writes to).
"""
import argparse, json, os, signal, socket, subprocess, sys, time, urllib.request

import boto3
from botocore.config import Config

TASK_ACCOUNT = "111111111111"
LOG_ACCOUNT = "222222222222"
ROLE_NAME = "cross-account-log-role"
REGION = "us-east-1"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

WRITE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": "*",
    }],
}
READ_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Action": ["logs:GetLogEvents", "logs:FilterLogEvents", "logs:DescribeLogStreams", "logs:DescribeLogGroups",
                   "logs:ListTagsLogGroup", "logs:ListTagsForResource"],
        "Resource": "*",
    }],
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(service, endpoint, account=None, key=None):
    creds = key or {"access_key_id": "bootstrap", "secret_access_key": "bootstrap"}
    c = boto3.client(
        service, region_name=REGION, endpoint_url=endpoint,
        aws_access_key_id=creds["access_key_id"], aws_secret_access_key=creds["secret_access_key"],
        config=Config(retries={"max_attempts": 2}),
    )
    if account:
        def add_header(request, **_):
            request.headers["x-moto-account-id"] = account
        c.meta.events.register("before-sign.*.*", add_header)
    return c


def user_with_key(iam, name, policy_name, policy):
    user = iam.create_user(UserName=name)["User"]
    iam.put_user_policy(UserName=name, PolicyName=policy_name, PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"arn": user["Arn"], "access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


def start(args):
    port = args.port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = open(args.state + ".log", "w")
    env = dict(os.environ, AWS_EC2_METADATA_DISABLED="true")
    moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
    proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log, env=env,
                            start_new_session=True)
    for _ in range(200):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
            break
        except Exception:
            if proc.poll() is not None:
                sys.exit(f"moto_server exited, see {args.state}.log")
            time.sleep(0.1)
    else:
        proc.kill()
        sys.exit("moto_server did not start")

    role_arn = f"arn:aws:iam::{LOG_ACCOUNT}:role/{ROLE_NAME}"
    task = user_with_key(client("iam", endpoint, TASK_ACCOUNT), "task", "assume-log-role", load_policy(
        "task-role-policy.json", {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}]}))
    iam_log = client("iam", endpoint, LOG_ACCOUNT)
    trust = load_policy("log-role-trust-policy.json", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": task["arn"]}, "Action": "sts:AssumeRole"}]})
    iam_log.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))
    iam_log.put_role_policy(RoleName=ROLE_NAME, PolicyName="cloudwatch-write",
                            PolicyDocument=json.dumps(load_policy("cloudwatch-write.json", WRITE_POLICY)))
    reader = user_with_key(iam_log, "reader", "read-logs", READ_POLICY)
    tenants = {}
    for account in filter(None, (args.tenants or "").split(",")):
        iam = client("iam", endpoint, account)
        iam.create_role(RoleName="log-writer", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": task["arn"]}, "Action": "sts:AssumeRole"}]}))
        iam.put_role_policy(RoleName="log-writer", PolicyName="cloudwatch-write", PolicyDocument=json.dumps(WRITE_POLICY))
        tenants[account] = {"role_arn": f"arn:aws:iam::{account}:role/log-writer",
                            "reader": user_with_key(iam, "reader", "read-logs", READ_POLICY)}
    if tenants:
        client("iam", endpoint, TASK_ACCOUNT).put_user_policy(
            UserName="task", PolicyName="assume-tenant-roles", PolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                               "Resource": [t["role_arn"] for t in tenants.values()]}]}))

    # From here on every request must be signed by a known principal and allowed by its policy.
    req = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                                 headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req, timeout=5).read()

    state = {"endpoint": endpoint, "pid": proc.pid, "region": REGION, "role_arn": role_arn,
             "task": task, "reader": reader, "tenants": tenants}
    with open(args.state, "w") as f:
        json.dump(state, f, indent=2)
    print(json.dumps({"endpoint": endpoint, "role_arn": role_arn, "task_principal": task["arn"]}))


def load_policy(name, fallback):
    """The FireLens kit's IAM documents are the source of truth when they exist."""
    path = os.path.join(ROOT, "plugin-config", "iam", name)
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
        # The kit names the ECS task role; here the task account's principal is the user `task`.
        text = text.replace(f"arn:aws:iam::{TASK_ACCOUNT}:role/app-task-role", f"arn:aws:iam::{TASK_ACCOUNT}:user/task")
        doc = json.loads(text)
        if name == "cloudwatch-write.json":
            # moto evaluates CloudWatch Logs actions against Resource "*" only (it builds no
            # log-group ARNs), so the kit's group-scoped resources would deny everything here;
            # the actions — what a missing permission would break — are kept exactly.
            for st in doc["Statement"]:
                st["Resource"] = "*"
        return doc
    return fallback


def stop(args):
    with open(args.state) as f:
        state = json.load(f)
    try:
        os.killpg(state["pid"], signal.SIGTERM)
    except ProcessLookupError:
        pass


def read(args):
    with open(args.state) as f:
        state = json.load(f)
    reader = state["tenants"][args.account]["reader"] if args.account else state["reader"]
    logs = client("logs", state["endpoint"], key=reader)
    try:
        streams = []
        for page in logs.get_paginator("describe_log_streams").paginate(logGroupName=args.group):
            streams += [s["logStreamName"] for s in page["logStreams"]]
    except logs.exceptions.ResourceNotFoundException:
        return
    out = sys.stdout
    for stream in streams:
        token = None
        while True:
            kw = {"logGroupName": args.group, "logStreamName": stream, "startFromHead": True, "limit": 10000}
            if token:
                kw["nextToken"] = token
            page = logs.get_log_events(**kw)
            for e in page["events"]:
                out.write(json.dumps({"stream": stream, "timestamp": e["timestamp"], "message": e["message"]}) + "\n")
            if not page["events"] or page.get("nextForwardToken") == token:
                break
            token = page.get("nextForwardToken")


def assumed(args):
    """AssumeRole calls moto served, by role ARN (moto keeps each assumed role it issued)."""
    with open(args.state) as f:
        state = json.load(f)
    data = json.loads(urllib.request.urlopen(state["endpoint"] + "/moto-api/data.json", timeout=10).read())
    counts = {}
    for role in data.get("sts", {}).get("AssumedRole", []):
        counts[role["role_arn"]] = counts.get(role["role_arn"], 0) + 1
    print(json.dumps(counts))


def describe(args):
    with open(args.state) as f:
        state = json.load(f)
    logs = client("logs", state["endpoint"], key=state["reader"])
    found = [g for g in logs.describe_log_groups(logGroupNamePrefix=args.group)["logGroups"]
             if g["logGroupName"] == args.group]
    group = found[0] if found else {}
    tags = logs.list_tags_log_group(logGroupName=args.group)["tags"] if found else None
    print(json.dumps({"retentionInDays": group.get("retentionInDays"), "kmsKeyId": group.get("kmsKeyId"),
                      "tags": tags, "exists": bool(found)}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["start", "stop", "read", "describe", "assumed"])
    p.add_argument("--state", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--group")
    p.add_argument("--tenants", help="comma-separated extra log accounts, each with a role log-writer")
    p.add_argument("--account", help="read as this tenant account's reader")
    args = p.parse_args()
    {"start": start, "stop": stop, "read": read, "describe": describe, "assumed": assumed}[args.command](args)


if __name__ == "__main__":
    main()
