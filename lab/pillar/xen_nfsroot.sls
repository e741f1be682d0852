# The lab's guests (lab/run): the dom0 minion `labdom0` under QEMU is both the
# NFS server and the dom0.  Its image holds the Debian kernel as
# /boot/vmlinuz-guest, a small initramfs that mounts an NFS root, and a static
# busybox root for each guest under /srv/xen.
xen_nfsroot:
  defaults:
    memory: 256
    toolstack: auto
    export_options: [rw, no_root_squash, async, no_subtree_check]
  server:
    manage_packages: false         # in the image already
    manage_service: false          # nfsd is started by the dom0's boot script
    exports_file: /etc/exports.d/xen-nfsroot.exports
  guests:
    nfsguest:
      nfs_server: labdom0
      nfs_server_address: 10.99.0.1
      nfs_root: /srv/xen/guest
      export_clients: [10.99.0.2]
      dom0: labdom0
      kernel: /boot/vmlinuz-guest
      ramdisk: /boot/initrd-small.img
      network: {address: 10.99.0.2, netmask: 255.255.255.0, gateway: 10.99.0.1,
                hostname: nfsguest, interface: eth0}
      extra: console=hvc0 net.ifnames=0
      vif: ['bridge=xenbr0']
      fstab: {fstype: nfs}
      autostart: true
      absent: false
    nfsguest2:                     # booted on demand: event xen_nfsroot/guest/boot
      nfs_server: labdom0
      nfs_server_address: 10.99.0.1
      nfs_root: /srv/xen/guest2
      export_clients: [10.99.0.3]
      dom0: labdom0
      kernel: /boot/vmlinuz-guest
      ramdisk: /boot/initrd-small.img
      network: {address: 10.99.0.3, netmask: 255.255.255.0, gateway: 10.99.0.1,
                hostname: nfsguest2, interface: eth0}
      extra: console=hvc0 net.ifnames=0
      vif: ['bridge=xenbr0']
      fstab: {fstype: nfs}
      autostart: false
      absent: false
