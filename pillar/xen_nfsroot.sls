# Example pillar: two guests, each described once. See pillar.example for
# every key, its default and what it does.
xen_nfsroot:
  defaults:
    memory: 256
    toolstack: auto
    export_options: [rw, no_root_squash, async, no_subtree_check]

  guests:
    # The classic NFS-root guest: a custom kernel with CONFIG_ROOT_NFS,
    # DHCP on eth0, its root exported from nfs1:/xen.
    XenGuest:
      nfs_server: nfs1
      nfs_server_address: 192.0.2.1
      nfs_root: /xen
      export_clients: [192.0.2.10]
      dom0: dom0-a                 # its home
      dom0s: [dom0-a, dom0-b]      # where it may run (and be migrated to)
      kernel: /boot/vmlinuz-2.6.18-53.1.14.el5.myxen
      network: dhcp
      vif: ['']
      fstab: {fstype: nfs, disable: [/dev/sdb2]}
      autostart: true

    # A guest with a static address, booted on demand (reactor or orchestrate).
    StaticGuest:
      nfs_server: nfs1
      nfs_server_address: 192.0.2.1
      nfs_root: /srv/xen/static
      export_clients: [192.0.2.11]
      dom0: dom0-b
      kernel: /boot/vmlinuz-guest
      memory: 512
      network:
        address: 192.0.2.11
        netmask: 255.255.255.0
        gateway: 192.0.2.254
        hostname: static
        interface: eth0
      vif: ['mac=00:16:3e:00:00:11']
      extra: console=hvc0
      autostart: false
