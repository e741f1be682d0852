# Every minion (the master's own minion included, for orchestrate and the
# reactor) sees the guest descriptions; xen_nfsroot.guests() picks each
# minion's share by its id.
base:
  '*':
    - xen_nfsroot
