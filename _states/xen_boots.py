"""
What the boots of one run share.

.. code-block:: yaml

    xen_nfsroot-boots-prepared:
      xen_boots.prepared:
        - kernels: [[/boot/vmlinuz-guest, null, true, pv]]
        - dom0s: [[dom0-b]]
        - toolstacks: [null]

A dom0 that boots several guests in one run boots them in parallel: their
``xen_guest.running`` states carry Salt's ``parallel: True``, so that each
runs in a process of its own (forked from the run's) and every guest's
console is watched at the same time, each state still returning its own
verdict. ``xen_nfsroot.state_data`` adds this state before them: it makes
the reads the boots share once, in the run's own process, so that every
fork inherits them (they are kept in ``__context__``) instead of making them
again.
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

from xen_nfsroot_lib import boot

__virtualname__ = "xen_boots"

ERRORS = (CommandExecutionError, SaltInvocationError, OSError)


def __virtual__():
    if "xm.list_domains" in __salt__:
        return __virtualname__
    return (False, "xen_boots.prepared needs the xm execution module (xl or xm not installed)")


def prepared(name, kernels=None, dom0s=None, toolstacks=None):
    """
    What the boots of a run read alike, read once before they run in
    parallel (Salt forks one process per ``parallel: True`` state, and each
    inherits the run's ``__context__``): the domain lists of ``toolstacks``,
    the mine's lists of each set of other ``dom0s`` and each kernel check
    (``[kernel, ramdisk, dhcp, guest_type]`` in ``kernels``). Added by
    ``xen_nfsroot.state_data`` before two or more boots. Changes nothing; a
    failed read is left to the guest states, which report it.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    done, failed = [], []
    try:
        reads = boot.shared_reads(kernels, dom0s, toolstacks)
    except SaltInvocationError as err:
        return dict(ret, result=False, comment=str(err))
    for what, function, args, kwargs in reads:
        try:
            __salt__[function](*args, **kwargs)
            done.append(what)
        except ERRORS as err:
            failed.append(f"{what} ({err})")
    ret["comment"] = f"Read {', '.join(done) or 'nothing'} once for the boots of this run"
    if failed:
        ret["comment"] += f"; left to the guests' own states: {'; '.join(failed)}"
    return ret
