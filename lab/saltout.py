"""The salt CLI's JSON outputs, as the lab reads them (runner and e2e tests).

``salt --out json`` prints one JSON object per minion as each returns;
``salt-run --out json state.orchestrate`` one object whose ``data`` holds the
master's state returns, each ``salt.state`` step with, under
``changes.ret.MINION``, the minion's own state returns when they changed or
failed.
"""

import json


def objects(text):
    """The JSON objects printed one after the other, merged into one."""
    decoder = json.JSONDecoder()
    text = text or ""
    merged, index = {}, 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return merged
        value, index = decoder.raw_decode(text, index)
        if not isinstance(value, dict):
            raise ValueError(f"not a JSON object: {value!r}")
        merged.update(value)


def orch_states(answer):
    """{state id: return} of an orchestration's answer."""
    if not isinstance(answer, dict):
        return {}
    found = {}
    for runs in (answer.get("data") or {}).values():
        if isinstance(runs, dict):
            for tag, ret in runs.items():
                if isinstance(ret, dict) and "result" in ret:
                    found[ret.get("__id__", tag)] = ret
    return found


def minion_states(step, minion):
    """{state id: return} of ``minion`` inside a ``salt.state`` step."""
    ret = ((step.get("changes") or {}).get("ret") or {}).get(minion)
    if not isinstance(ret, dict):
        return {}
    return by_id(ret)


def by_id(states):
    """A minion's state returns ({tag: return}) keyed by state id."""
    return {v.get("__id__", k): v for k, v in (states or {}).items() if isinstance(v, dict)}


def brief(ret):
    ret = ret or {}
    return {"id": ret.get("__id__"), "result": ret.get("result"),
            "comment": str(ret.get("comment"))[:400]}
