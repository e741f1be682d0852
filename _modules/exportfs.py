def __virtual__():
    return "exportfs"
def list_active():
    return {}
def add():
    pass
def ping():
    return True
