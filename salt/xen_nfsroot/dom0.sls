{#- The dom0 side: for each guest this minion runs, its kernel (and
    initramfs) in place, its config written and, with autostart, the guest
    booted (or booted anyway with the inline pillar xen_nfsroot_boot: true,
    which the orchestration passes for a guest it was asked to boot by name).
    A guest marked absent is stopped and its config removed.
    Arguments come from xen_nfsroot.guests, which validated the pillar. -#}
{%- set only = salt["pillar.get"]("xen_nfsroot_guest") or none %}
{%- set guests = salt["xen_nfsroot.guests"]("dom0", only=only) %}
{%- set boot = salt["pillar.get"]("xen_nfsroot_boot", False) is sameas true %}
{%- set managed = [] %}
{#- A minion that is also the NFS server of its guests boots them only after
    their exports are applied. #}
{%- set serves_own = guests.values() | selectattr("nfs_server", "equalto", grains.id) | list %}
{%- if serves_own %}
include:
  - xen_nfsroot.server
{%- endif %}
{%- for name, guest in guests.items() %}
{%-   set guest_id = "xen_nfsroot-guest-" ~ name %}
{%-   if guest.absent %}

{{ guest_id }}:
  xen_guest.absent:
    - name: {{ name | json }}
    - config_dir: {{ guest.config_dir | json }}
{%-   else %}
{%-     for file in ("kernel", "ramdisk") if guest[file ~ "_source"] %}
{%-       if guest[file] not in managed %}
{%-         do managed.append(guest[file]) %}

xen_nfsroot-file-{{ guest[file] }}:
  file.managed:
    - name: {{ guest[file] | json }}
    - source: {{ guest[file ~ "_source"] | json }}
{%-         if guest[file ~ "_source_hash"] %}
    - source_hash: {{ guest[file ~ "_source_hash"] | json }}
{%-         endif %}
    - mode: "0644"
    - makedirs: true
{%-       endif %}
{%-     endfor %}

{%-     set running = guest.autostart or boot %}

{{ guest_id }}:
  xen_guest.{{ "running" if running else "configured" }}:
{%-     for key, value in guest.states.xen_guest.items() if value is not none %}
    - {{ key }}: {{ value | json }}
{%-     endfor %}
{%-     if running %}
    - restart_on_change: {{ guest.restart_on_change | json }}
{%-     endif %}
{%-     if guest.kernel_source or guest.ramdisk_source or guest.nfs_server == grains.id %}
    - require:
{%-       for file in ("kernel", "ramdisk") if guest[file ~ "_source"] %}
      - file: xen_nfsroot-file-{{ guest[file] }}
{%-       endfor %}
{%-       if guest.nfs_server == grains.id %}
      - nfs_export: xen_nfsroot-exports-applied
{%-       endif %}
{%-     endif %}
{%-   endif %}
{%- endfor %}
