# What the lab's dom0s publish through the Salt mine (as pillar.example's
# xen_nfsroot_mine.sls): their domain lists, read by a dom0 before it boots a
# guest that may run on another, and the migration keys.  The minions run no
# scheduled mine.update (mine_enabled: False in their config); the lab sends
# it once after the formula's modules are synced, and the formula's states
# send it again after each change.
mine_functions:
  xm.list_domains:
    - fresh: true
  xen_migrate.public_keys: []
