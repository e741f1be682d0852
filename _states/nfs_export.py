def __virtual__():
    return "nfs_export"
def present(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}
