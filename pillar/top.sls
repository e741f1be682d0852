# Every minion (the master's own minion included, for orchestrate and the
# reactor) sees the guest descriptions; xen_nfsroot.guests() picks each
# minion's share by its id.
base:
  '*':
    - xen_nfsroot
  # The dom0s publish their domains and migration keys through the mine.
  'dom0-*':
    - xen_nfsroot_mine
