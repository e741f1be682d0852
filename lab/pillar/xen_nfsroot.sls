# The lab's guests (lab/run).  Two dom0 minions under QEMU: `labdom0-a`, also
# the NFS server, and `labdom0-b`; their bridges are one network
# (10.99.0.0/24).  The image holds the Debian kernel (/boot/vmlinuz-RELEASE,
# also as /boot/vmlinuz-guest), a small initramfs that mounts an NFS root,
# and a static busybox root for each guest under /srv/xen.
#
# The kernel's release comes from the image (the runner puts it in the
# master's configuration as lab_kernel_release).
{%- set release = opts.get("lab_kernel_release", "6.1.0-50-amd64") %}
xen_nfsroot:
  defaults:
    memory: 256
    toolstack: auto
    export_options: [rw, no_root_squash, async, no_subtree_check]
    kernel: /boot/vmlinuz-guest
    ramdisk: /boot/initrd-small.img
    extra: console=hvc0 net.ifnames=0
    vif: ['bridge=xenbr0']
    fstab: {fstype: nfs}
    nfs_server: labdom0-a
    nfs_server_address: 10.99.0.1
    dom0: labdom0-a
    # Booted under emulation on a loaded machine a guest takes up to a
    # minute and a half to its userspace: the watch ends as soon as the
    # console shows the proof (or a failure).
    boot_timeout: 600
  server:
    manage_packages: false         # in the image already
    manage_service: false          # nfsd is started by the dom0's boot script
    exports_file: /etc/exports.d/xen-nfsroot.exports
  dom0:
    console_logging: true
    # Where each dom0 is reached for a live migration (their bridges, one
    # network: lab/image/dom0/etc/lab/dom0s).
    addresses: {labdom0-a: 10.99.0.1, labdom0-b: 10.99.0.10}
  guests:
    nfsguest:                      # the proven boot; then moves live between the dom0s
      nfs_root: /srv/xen/guest
      export_clients: [10.99.0.2]
      dom0s: [labdom0-a, labdom0-b]  # home: labdom0-a (defaults)
      memory: 128
      network: {address: 10.99.0.2, gateway: 10.99.0.1, hostname: nfsguest}
      # A counter and the guest's uptime on its console every 2 s.
      extra: console=hvc0 net.ifnames=0 lab_tick=2
      boot_marker: 'XEN-NFSROOT-GUEST-ROOT 10\.99\.0\.1:/srv/xen/guest / nfs '
      autostart: true
    nfsguest2:                     # booted on demand: event xen_nfsroot/guest/boot
      nfs_root: /srv/xen/guest2
      export_clients: [10.99.0.3]
      network: {address: 10.99.0.3, gateway: 10.99.0.1, hostname: nfsguest2}
      boot_marker: 'XEN-NFSROOT-GUEST-ROOT 10\.99\.0\.1:/srv/xen/guest2 / nfs '
      autostart: false
    stockkernel:                   # refused: the Debian kernel cannot mount an NFS root alone
      nfs_root: /srv/xen/stockkernel
      export_clients: [10.99.0.4]
      kernel: /boot/vmlinuz-{{ release }}
      ramdisk: null
      network: {address: 10.99.0.4, gateway: 10.99.0.1, hostname: stockkernel}
      autostart: true
    noexport:                      # caught: its root is not exported to it
      nfs_root: /srv/xen/noexport
      export_clients: [10.99.0.250]  # another host; the guest is 10.99.0.5
      network: {address: 10.99.0.5, gateway: 10.99.0.1, hostname: noexport}
      # Its initramfs tries the mount twice more, then halts (panic=0)
      # instead of opening a shell: Xen destroys the halted domain.
      extra: console=hvc0 net.ifnames=0 rootdelay=2 panic=0
      boot_timeout: 400
      autostart: true
