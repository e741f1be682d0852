# For the dom0s (minions that run guests): what they publish through the
# Salt mine. xm.list_domains tells the other dom0s of a guest where it runs
# (xen_guest.running boots a guest only where it runs on none of its dom0s);
# xen_migrate.public_keys carries the migration key and the host keys that
# xen_migrate.trusted sets up on the other end. The states send both again
# after each change; mine_interval refreshes them too.
mine_functions:
  xm.list_domains:
    - fresh: true
  xen_migrate.public_keys: []
