"""Expand a SAM template with the real SAM translator and lint the result with cfn-lint.

cfn-lint checks SAM resources against SAM's schemas; this also proves the transform itself
succeeds (the part `sam deploy` runs in CloudFormation) and lints the plain CloudFormation it
produces. Local CodeUri paths are swapped for a placeholder S3 location first, as
`sam package` would do.

Then the security checks (docs/security.md), on the expanded template rendered (cfn_eval.py) for
the default parameters, for a JWT issuer, and for the demo parameter: no route without
authorization (NONE) unless AllowAnonymousDemoAccess=true; AWS_IAM without a JWT issuer and
JWT with one; every function told its AUTH_MODE (header only for the demo); stage throttling
with tighter limits on the expensive routes; reserved concurrency on every function, the
marking worker's at least its SQS maximum concurrency; the demo parameter named as unsafe in
the Outputs.

usage: python sam_check.py TEMPLATE
"""

import json
import os
import subprocess
import sys
import tempfile

from cfnlint.decode import decode
from samtranslator.translator.transform import transform

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cfn_eval import render  # noqa: E402

# Routes whose stage throttling must be tighter than the default (docs/security.md, "Abuse limits").
EXPENSIVE_ROUTES = (
    "POST /scenarios/{scenario_id}/migration-plan",
    "POST /migration-plans/{plan_id}/deploy",
)
JWT = {"JwtIssuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_example", "JwtAudience": "client-1"}
DEMO = {"AllowAnonymousDemoAccess": "true"}
# (name, parameter overrides, expected route authorization, expected AUTH_MODE)
CASES = (
    ("default parameters", {}, "AWS_IAM", "iam"),
    ("a JWT issuer", JWT, "JWT", "jwt"),
    ("AllowAnonymousDemoAccess=true", DEMO, "NONE", "header"),
    ("AllowAnonymousDemoAccess=true with a JWT issuer", {**DEMO, **JWT}, "NONE", "header"),
    (
        "no reserved concurrency (-1)",
        {
            name: "-1"
            for name in (
                "ScenariosReservedConcurrency",
                "SessionsReservedConcurrency",
                "PlansReservedConcurrency",
                "DeploymentsReservedConcurrency",
                "MarkSessionsReservedConcurrency",
            )
        },
        "AWS_IAM",
        "iam",
    ),
)


def _of_type(stack, kind):
    return {name: r for name, r in stack["Resources"].items() if r.get("Type") == kind}


def check_case(expanded, label, overrides, want_auth, want_mode):
    """Problems of one rendering of the expanded template, as messages."""
    problems = []
    stack = render(expanded, overrides)
    demo = overrides.get("AllowAnonymousDemoAccess") == "true"

    routes = _of_type(stack, "AWS::ApiGatewayV2::Route")
    if not routes:
        problems.append("no routes")
    authorizers = _of_type(stack, "AWS::ApiGatewayV2::Authorizer")
    for name, route in routes.items():
        props = route["Properties"]
        auth = props.get("AuthorizationType", "NONE")
        if auth == "NONE" and not demo:
            problems.append(f"{name} ({props.get('RouteKey')}) has no authorization")
        if auth != want_auth:
            problems.append(f"{name}: AuthorizationType {auth}, expected {want_auth}")
        has_authorizer = "AuthorizerId" in props
        if has_authorizer != (want_auth == "JWT"):
            problems.append(f"{name}: AuthorizerId {'set' if has_authorizer else 'missing'}")
    if bool(authorizers) != (want_auth == "JWT"):
        problems.append(f"JWT authorizer {'present' if authorizers else 'missing'}")

    functions = _of_type(stack, "AWS::Lambda::Function")
    for name, fn in functions.items():
        props = fn["Properties"]
        env = (props.get("Environment") or {}).get("Variables") or {}
        if env.get("AUTH_MODE") != want_mode:
            problems.append(f"{name}: AUTH_MODE {env.get('AUTH_MODE')!r}, expected {want_mode!r}")
        if want_mode == "iam" and "IAM_TENANT_BINDINGS" not in env:
            problems.append(f"{name}: no IAM_TENANT_BINDINGS")
        reserved = props.get("ReservedConcurrentExecutions")
        param = name.replace("Function", "ReservedConcurrency")
        expected = stack["Parameters"].get(param)
        if expected is None:
            problems.append(f"{name}: no {param} parameter")
        elif expected == "-1":
            if reserved is not None:
                problems.append(f"{name}: reserved concurrency {reserved} although {param}=-1")
        elif str(reserved) != expected or int(expected) < 1:
            problems.append(f"{name}: ReservedConcurrentExecutions {reserved!r}, expected {expected}")
    for name, mapping in _of_type(stack, "AWS::Lambda::EventSourceMapping").items():
        maximum = ((mapping["Properties"].get("ScalingConfig") or {}).get("MaximumConcurrency"))
        target = mapping["Properties"].get("FunctionName", {}).get("Ref")
        reserved = functions.get(target, {}).get("Properties", {}).get("ReservedConcurrentExecutions")
        if maximum is not None and reserved is not None and int(reserved) < int(maximum):
            problems.append(f"{name}: SQS MaximumConcurrency {maximum} above {target}'s reserved {reserved}")
        # The marking worker walks one chain per invocation, so that a deployment's chains
        # spread over invocations (docs/design.md, "One chain per worker slot").
        batch = mapping["Properties"].get("BatchSize")
        if target == "MarkSessionsFunction" and str(batch) != "1":
            problems.append(f"{name}: marking BatchSize {batch!r}, expected 1 (one chain per invocation)")

    stages = _of_type(stack, "AWS::ApiGatewayV2::Stage")
    if len(stages) != 1:
        problems.append(f"{len(stages)} stages")
    for name, stage in stages.items():
        props = stage["Properties"]
        default = props.get("DefaultRouteSettings") or {}
        burst, rate = default.get("ThrottlingBurstLimit"), default.get("ThrottlingRateLimit")
        if burst is None or rate is None or float(rate) <= 0 or int(burst) <= 0:
            problems.append(f"{name}: no default route throttling ({default})")
            continue
        settings = props.get("RouteSettings") or {}
        route_keys = {r["Properties"]["RouteKey"] for r in routes.values()}
        for key in settings:
            if key not in route_keys:
                problems.append(f"{name}: route settings for {key!r}, which is no route")
        for key in EXPENSIVE_ROUTES:
            own = settings.get(key) or {}
            b, r = own.get("ThrottlingBurstLimit"), own.get("ThrottlingRateLimit")
            if b is None or r is None:
                problems.append(f"{name}: no throttling for {key}")
            elif int(b) > int(burst) or float(r) > float(rate):
                problems.append(f"{name}: {key} throttled less than the default")
        depends = stage.get("DependsOn") or []
        depends = [depends] if isinstance(depends, str) else depends
        for route_name, route in routes.items():
            if route["Properties"]["RouteKey"] in settings and route_name not in depends:
                problems.append(f"{name}: does not depend on {route_name}, named in its route settings")

    outputs = stack["Outputs"]
    warning = outputs.get("AnonymousDemoAccess") or {}
    described = str(warning.get("Description", ""))
    if "AllowAnonymousDemoAccess" not in described or "UNSAFE" not in described:
        problems.append("Outputs do not name AllowAnonymousDemoAccess as unsafe")
    elif demo and "UNSAFE" not in str(warning.get("Value")):
        problems.append("the demo stack's AnonymousDemoAccess output does not say UNSAFE")
    if want_auth == "AWS_IAM" and "ApiInvokePolicyArn" not in outputs:
        problems.append("no ApiInvokePolicyArn output for IAM callers")
    reserved = sum(1 for f in functions.values() if "ReservedConcurrentExecutions" in f["Properties"])
    summary = (
        f"{len(routes)} routes {want_auth}, AUTH_MODE={want_mode} on {len(functions)} functions, "
        f"stage throttling set, reserved concurrency on {reserved}"
    )
    return problems, summary


def check_security(expanded):
    rc = 0
    for label, overrides, want_auth, want_mode in CASES:
        try:
            problems, summary = check_case(expanded, label, overrides, want_auth, want_mode)
        except Exception as exc:  # a template the renderer cannot follow is a failure too
            problems, summary = [f"could not render: {exc!r}"], ""
        if problems:
            rc = 1
            print(f"security check FAILED for {label}:", file=sys.stderr)
            for p in problems:
                print(f"  - {p}", file=sys.stderr)
        else:
            print(f"security check ok for {label}: {summary}")
    return rc


class _NoManagedPolicies:
    def load(self):
        return {}


def main(path: str) -> int:
    template, errors = decode(path)
    if errors:
        for e in errors:
            print(e, file=sys.stderr)
        return 1
    placeholder = "s3://placeholder-bucket/code.zip"
    glob = template.get("Globals", {}).get("Function", {})
    if isinstance(glob.get("CodeUri"), str):
        glob["CodeUri"] = placeholder
    for res in template.get("Resources", {}).values():
        props = res.get("Properties", {})
        if res.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = placeholder
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        out = transform(template, {"AWS::Region": os.environ["AWS_DEFAULT_REGION"]}, _NoManagedPolicies())
    except Exception as exc:  # the translator's own errors name the resource and property
        print(f"SAM transform failed: {exc}", file=sys.stderr)
        return 1
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(out, f, indent=1, default=str)
        expanded = f.name
    try:
        lint = os.path.join(os.path.dirname(sys.executable), "cfn-lint")
        rc = subprocess.call([lint, expanded])
    finally:
        os.unlink(expanded)
    if rc == 0:
        print(f"SAM transform ok: {len(out['Resources'])} CloudFormation resources, cfn-lint clean")
    return check_security(out) or rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
