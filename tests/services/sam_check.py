"""Expand a SAM template with the real SAM translator and lint the result with cfn-lint.

cfn-lint checks SAM resources against SAM's schemas; this also proves the transform itself
succeeds (the part `sam deploy` runs in CloudFormation) and lints the plain CloudFormation it
produces. Local CodeUri paths are swapped for a placeholder S3 location first, as
`sam package` would do.

usage: python sam_check.py TEMPLATE
"""

import json
import os
import subprocess
import sys
import tempfile

from cfnlint.decode import decode
from samtranslator.translator.transform import transform


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
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
