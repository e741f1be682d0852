base:
  '*':
    - xen_nfsroot
