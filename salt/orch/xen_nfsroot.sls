{#- Orchestration: for every guest, its export on the NFS server first, then
    its boot on the dom0 (the boot proven there: kernel checked, console
    watched; a guest with several dom0s first gets its dom0s' migration keys
    (each published through the mine by its key state) before any of them
    sets up its trust of the others, then is asked of all of them, their mine entries sent again, and
    booted on its home only when it runs on none: a dom0 that does not
    answer stops the boot), then the NFS server's confirmation that the guest mounted its
    root; a failed step stops that guest's next one. A guest marked absent
    goes the other way round: stopped first, then its export removed.

    Inline pillar (all optional):
      guest: NAME          only this guest, booted even without autostart
      dom0: MINION_ID      only the guests this dom0 runs
      autostart_only: true only guests with autostart (minion start reactor)
      retry: true          boot again a guest whose last boot failed

    A filter given is a filter: a value that names no guest or dom0 of the
    pillar ("", 0, false, null, a list, a mapping, an unknown name) selects
    nothing and the notification says which value; only leaving a filter
    out selects every guest. Every target, path and option comes from the
    xen_nfsroot pillar. -#}
{%- set selection = {"only": pillar["guest"]} if "guest" in pillar else {} %}
{%- set dom0_given = "dom0" in pillar %}
{%- set autostart_only = pillar.get("autostart_only", False) is sameas true %}
{%- set selected = salt["xen_nfsroot.guests"](**selection) %}
{%- set ns = namespace(count=0) %}
{%- for name, guest in selected.items() %}
{%-   if (not dom0_given or guest.dom0 == pillar["dom0"]) and (not autostart_only or guest.autostart) %}
{%-     set ns.count = ns.count + 1 %}
{%-     set export_id = "xen_nfsroot-export-" ~ name %}
{%-     set boot_id = "xen_nfsroot-boot-" ~ name %}
{%-     set mine_id = "xen_nfsroot-where-" ~ name %}
{%-     set keys_id = "xen_nfsroot-keys-" ~ name %}

{{ export_id }}:
  salt.state:
    - tgt: {{ guest.nfs_server | json }}
    - sls: [xen_nfsroot.server]
    - pillar: {xen_nfsroot_guest: {{ name | json }}}
{%-     if guest.absent %}
    - require:
      - salt: {{ boot_id }}
{%-     endif %}

{%-     if guest.dom0s | length > 1 and not guest.absent %}

{{ keys_id }}:
  salt.state:
    - tgt: {{ guest.dom0s | json }}
    - tgt_type: list
    - sls: [xen_nfsroot.migrate_key]
{%-     endif %}
{%-     if guest.dom0s | length > 1 %}

{{ mine_id }}:
  salt.function:
    - name: mine.send
    - tgt: {{ guest.dom0s | json }}
    - tgt_type: list
    - arg: [xm.list_domains]
    - kwarg: {fresh: true}
    - expect_minions: true
{%-       if not guest.absent %}
    - require:
      - salt: {{ keys_id }}
{%-       endif %}
{%-     endif %}

{{ boot_id }}:
  salt.state:
{%-     if guest.dom0s | length > 1 %}
    - tgt: {{ guest.dom0s | json }}
    - tgt_type: list
{%-     else %}
    - tgt: {{ guest.dom0 | json }}
{%-     endif %}
    - sls: [xen_nfsroot.dom0]
    - pillar: {xen_nfsroot_guest: {{ name | json }}, xen_nfsroot_boot: {{ ("only" in selection) | json }}, xen_nfsroot_retry: {{ (pillar.get("retry", False) is sameas true) | json }}}
{%-     if not guest.absent or guest.dom0s | length > 1 %}
    - require:
{%-       if not guest.absent %}
      - salt: {{ export_id }}
{%-       endif %}
{%-       if guest.dom0s | length > 1 %}
      - salt: {{ mine_id }}
{%-       endif %}
{%-     endif %}
{%-     if not guest.absent and (guest.autostart or "only" in selection) %}

xen_nfsroot-mounted-{{ name }}:
  salt.state:
    - tgt: {{ guest.nfs_server | json }}
    - sls: [xen_nfsroot.mounted]
    - pillar: {xen_nfsroot_guest: {{ name | json }}}
    - require:
      - salt: {{ boot_id }}
{%-     endif %}
{%-   endif %}
{%- endfor %}
{%- if ns.count == 0 %}
{%-   set given = [] %}
{%-   for key in ("guest", "dom0", "autostart_only", "retry") if key in pillar %}
{%-     do given.append("%s=%r" % (key, pillar[key])) %}
{%-   endfor %}

xen_nfsroot-nothing-selected:
  test.show_notification:
    - text: {{ ("xen_nfsroot: no guest selected (%s)" % (given | join(", ") or "pillar defines no guest")) | json }}
{%- endif %}
