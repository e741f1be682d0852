base:
  '*':
    - xen_nfsroot
  'labdom0-*':
    - mine
