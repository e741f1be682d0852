{#- Orchestration: for every guest, its export on the NFS server first, then
    its boot on the dom0; a failed export stops that guest's boot.
    A guest marked absent goes the other way round: stopped first, then its
    export removed.

    Inline pillar (all optional):
      guest: NAME          only this guest, booted even without autostart
                           (a name pillar does not define selects nothing
                           and is logged)
      dom0: MINION_ID      only the guests this dom0 runs
      autostart_only: true only guests with autostart (minion start reactor)

    Every target, path and option comes from the xen_nfsroot pillar. -#}
{%- set only = salt["pillar.get"]("guest") or none %}
{%- set dom0 = salt["pillar.get"]("dom0") or none %}
{%- set autostart_only = salt["pillar.get"]("autostart_only", False) %}
{%- set selected = salt["xen_nfsroot.guests"](only=only) %}
{%- set ns = namespace(count=0) %}
{%- for name, guest in selected.items() %}
{%-   if (dom0 is none or guest.dom0 == dom0) and (not autostart_only or guest.autostart) %}
{%-     set ns.count = ns.count + 1 %}
{%-     set export_id = "xen_nfsroot-export-" ~ name %}
{%-     set boot_id = "xen_nfsroot-boot-" ~ name %}

{{ export_id }}:
  salt.state:
    - tgt: {{ guest.nfs_server | json }}
    - sls: [xen_nfsroot.server]
    - pillar: {xen_nfsroot_guest: {{ name | json }}}
{%-     if guest.absent %}
    - require:
      - salt: {{ boot_id }}
{%-     endif %}

{{ boot_id }}:
  salt.state:
    - tgt: {{ guest.dom0 | json }}
    - sls: [xen_nfsroot.dom0]
    - pillar: {xen_nfsroot_guest: {{ name | json }}, xen_nfsroot_boot: {{ (only is not none) | json }}}
{%-     if not guest.absent %}
    - require:
      - salt: {{ export_id }}
{%-     endif %}
{%-   endif %}
{%- endfor %}
{%- if ns.count == 0 %}

xen_nfsroot-nothing-selected:
  test.show_notification:
    - text: {{ ("xen_nfsroot: no guest selected (guest=%s, dom0=%s)" % (only, dom0)) | json }}
{%- endif %}
