"""Checks a JSON document against the input shape of an AWS API operation, offline.

usage: aws_shapes.py SERVICE OPERATION FILE

The shape is botocore's service model (the one the AWS CLI and boto3 send requests with), read
from the installed botocore package: no network, no credentials. botocore's own validator checks
required members, unknown keys and types, as `aws SERVICE OPERATION --cli-input-json` would
before sending; enum values, which it leaves to the service, are checked here. Prints one line
per problem and exits 1 when there is any.
"""
import json
import sys

import botocore.session
from botocore.validate import ParamValidator


def enum_problems(value, shape, path):
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                yield from enum_problems(value[name], member, f"{path}.{name}")
    elif shape.type_name == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            yield from enum_problems(item, shape.member, f"{path}[{i}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        for k, v in value.items():
            yield from enum_problems(v, shape.value, f"{path}.{k}")
    elif shape.type_name == "string" and shape.enum and value not in shape.enum:
        yield f"{path}: {value!r} is not one of {', '.join(shape.enum)}"


def main():
    service, operation, path = sys.argv[1:4]
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    with open(path) as f:
        params = json.load(f)
    problems = []
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        problems.extend(line for line in report.generate_report().splitlines() if line.strip())
    problems.extend(enum_problems(params, shape, operation))
    for p in problems:
        print(p)
    print(f"{service} {operation} (botocore {botocore.__version__}): {len(problems)} problem(s) in {path}",
          file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
