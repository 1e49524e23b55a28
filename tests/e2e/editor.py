"""A scripted editor for `kubectl edit`: KUBE_EDITOR="python editor.py", the edit in $EDIT.

$EDIT is JSON: {"plug": [{"name": ..., "network": ..., "model": ...}], "remove": [name, ...]}.
Plugged interfaces get a bridge binding on multus network `network`; removed ones
lose their interface and network entries, as a user deleting those lines would.
"""

import json
import os
import sys

import yaml


def main(path: str) -> None:
    with open(path, encoding="utf-8") as handle:
        vm = yaml.safe_load(handle)
    edit = json.loads(os.environ["EDIT"])
    spec = vm["spec"]["template"]["spec"]
    interfaces = spec["domain"]["devices"]["interfaces"]
    for plug in edit.get("plug", ()):
        interface = {"name": plug["name"], "bridge": {}}
        if plug.get("model"):
            interface["model"] = plug["model"]
        interfaces.append(interface)
        spec["networks"].append({"name": plug["name"], "multus": {"networkName": plug["network"]}})
    removed = set(edit.get("remove", ()))
    spec["domain"]["devices"]["interfaces"] = [i for i in interfaces if i["name"] not in removed]
    spec["networks"] = [n for n in spec["networks"] if n["name"] not in removed]
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(vm, handle)


if __name__ == "__main__":
    main(sys.argv[-1])
