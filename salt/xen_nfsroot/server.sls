{#- The NFS server side: packages and service, then for each guest this
    minion exports: its root filesystem in place (optionally unpacked from an
    archive), the guest's fstab turned to an NFS root, and its export; one
    `exportfs -ra` at the end of the run, and only when an export changed.
    A guest marked absent loses its export (its files are left alone).
    Arguments come from xen_nfsroot.guests, which validated the pillar. -#}
{%- from "xen_nfsroot/map.jinja" import server with context %}
{%- set only = salt["pillar.get"]("xen_nfsroot_guest") or none %}
{%- set guests = salt["xen_nfsroot.guests"]("server", only=only) %}
{%- if guests %}
{%-   if server.manage_packages %}

xen_nfsroot-server-packages:
  pkg.installed:
    - pkgs: {{ server.packages | json }}
{%-   endif %}
{%-   if server.manage_service %}

xen_nfsroot-server-service:
  service.running:
    - name: {{ server.service | json }}
    - enable: true
{%-     if server.manage_packages %}
    - require:
      - pkg: xen_nfsroot-server-packages
{%-     endif %}
{%-   endif %}
{%-   for name, guest in guests.items() %}
{%-     set export_id = "xen_nfsroot-export-" ~ name %}
{%-     if guest.absent %}

{{ export_id }}:
  nfs_export.absent:
    - name: {{ guest.nfs_root | json }}
    - exports: {{ server.exports_file | json }}
    - reload: false
{%-     else %}
{%-       if guest.root_archive %}

xen_nfsroot-root-{{ name }}:
  archive.extracted:
    - name: {{ guest.nfs_root | json }}
{%-         for key, value in guest.root_archive.items() %}
    - {{ key }}: {{ value | json }}
{%-         endfor %}
    - enforce_toplevel: false
    - if_missing: {{ (guest.nfs_root ~ "/etc") | json }}
{%-       endif %}
{%-       if guest.states.domu_fstab %}

xen_nfsroot-fstab-{{ name }}:
  domu_fstab.nfs_root:
{%-         for key, value in guest.states.domu_fstab.items() if value is not none %}
    - {{ key }}: {{ value | json }}
{%-         endfor %}
{%-         if guest.root_archive %}
    - require:
      - archive: xen_nfsroot-root-{{ name }}
{%-         endif %}
{%-       endif %}

{{ export_id }}:
  nfs_export.present:
{%-       for key, value in guest.states.nfs_export.items() %}
    - {{ key }}: {{ value | json }}
{%-       endfor %}
    - exports: {{ server.exports_file | json }}
    - reload: false
{%-       if guest.states.domu_fstab %}
    - require:
      - domu_fstab: xen_nfsroot-fstab-{{ name }}
{%-       endif %}
{%-     endif %}
{%-   endfor %}

xen_nfsroot-exports-applied:
  nfs_export.reloaded:
    - require:
{%-   for name in guests %}
      - xen_nfsroot-export-{{ name }}
{%-   endfor %}
{%- endif %}
