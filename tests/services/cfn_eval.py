"""Render a CloudFormation template for one set of parameter values.

Just enough of CloudFormation's own evaluation to check what a stack would get: parameter
defaults and overrides, Conditions (Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition),
resources and outputs dropped by a false Condition, Fn::If picked, AWS::NoValue removed and
Ref to a parameter replaced by its value (a string, as CloudFormation passes it). Other
intrinsics (Fn::GetAtt, Fn::Sub, Ref to a resource) are left as they are.
"""

from typing import Any, Dict, Mapping

_NO_VALUE = object()


class RenderError(Exception):
    pass


def parameter_values(template: Mapping[str, Any], overrides: Mapping[str, str]) -> Dict[str, str]:
    values = {}
    for name, spec in (template.get("Parameters") or {}).items():
        if name in overrides:
            values[name] = str(overrides[name])
        elif "Default" in spec:
            values[name] = _text(spec["Default"])
        else:
            raise RenderError(f"parameter {name} has no default and no value")
    unknown = set(overrides) - set(values)
    if unknown:
        raise RenderError(f"unknown parameters: {sorted(unknown)}")
    return values


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    return str(value)


def _single(node: Any):
    if isinstance(node, dict) and len(node) == 1:
        return next(iter(node.items()))
    return None, None


def _scalar(node: Any, params: Mapping[str, str]) -> str:
    key, arg = _single(node)
    if key == "Ref":
        if arg in params:
            return params[arg]
        raise RenderError(f"condition refers to {arg}, which is not a parameter")
    if key is not None:
        raise RenderError(f"unsupported function in a condition: {key}")
    return _text(node)


def evaluate_conditions(template: Mapping[str, Any], params: Mapping[str, str]) -> Dict[str, bool]:
    definitions = template.get("Conditions") or {}
    done: Dict[str, bool] = {}

    def condition(name: str, stack: tuple) -> bool:
        if name in done:
            return done[name]
        if name in stack:
            raise RenderError(f"condition cycle through {name}")
        if name not in definitions:
            raise RenderError(f"unknown condition {name}")
        done[name] = value(definitions[name], stack + (name,))
        return done[name]

    def value(node: Any, stack: tuple) -> bool:
        key, arg = _single(node)
        if key == "Fn::Equals":
            a, b = arg
            return _scalar(a, params) == _scalar(b, params)
        if key == "Fn::Not":
            return not value(arg[0], stack)
        if key == "Fn::And":
            return all(value(a, stack) for a in arg)
        if key == "Fn::Or":
            return any(value(a, stack) for a in arg)
        if key == "Condition":
            return condition(arg, stack)
        raise RenderError(f"unsupported condition expression: {node!r}")

    for name in definitions:
        condition(name, ())
    return done


def _resolve(node: Any, params: Mapping[str, str], conditions: Mapping[str, bool]) -> Any:
    if isinstance(node, dict):
        key, arg = _single(node)
        if key == "Fn::If":
            name, yes, no = arg
            return _resolve(yes if conditions[name] else no, params, conditions)
        if key == "Ref" and arg == "AWS::NoValue":
            return _NO_VALUE
        if key == "Ref" and arg in params:
            return params[arg]
        out = {}
        for k, v in node.items():
            r = _resolve(v, params, conditions)
            if r is not _NO_VALUE:
                out[k] = r
        return out
    if isinstance(node, list):
        return [r for r in (_resolve(v, params, conditions) for v in node) if r is not _NO_VALUE]
    return node


def render(template: Mapping[str, Any], overrides: Mapping[str, str]) -> Dict[str, Any]:
    """The template as a stack with these parameter values would get it."""
    params = parameter_values(template, overrides)
    conditions = evaluate_conditions(template, params)
    out: Dict[str, Any] = {"Parameters": params, "Conditions": conditions}
    for section in ("Resources", "Outputs"):
        kept = {}
        for name, body in (template.get(section) or {}).items():
            cond = body.get("Condition")
            if cond is not None and not conditions[cond]:
                continue
            kept[name] = _resolve(body, params, conditions)
        out[section] = kept
    return out
