{#- Orchestration: for every guest, its export on the NFS server first (a
    guest with several dom0s also gets its dom0s' migration keys, each
    published through the mine by its key state, before any of them sets up
    its trust of the others, then their domain lists sent to the mine
    again); then one boot step on all the guests' dom0s, in which each dom0
    boots the guests it runs at once and proves each boot (kernel checked,
    console watched; a guest with several dom0s booted on its home only when
    it runs on none: a dom0 that does not answer stops the boot); then, for
    each guest, its own verdict (guest_console.verdict: up, or its failure)
    and the NFS server's confirmation that it mounted its root. A failed
    export holds back the boot step (it names the export); a failed boot
    fails that guest's verdict only, and stops its mounted step. A guest
    marked absent goes the other way round: stopped in the boot step, its
    absence checked on every dom0, then its export removed.

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
{%- set boots, dom0s, before, verdicts = [], [], [], [] %}
{%- for name, guest in selected.items() %}
{%-   if (not dom0_given or guest.dom0 == pillar["dom0"]) and (not autostart_only or guest.autostart) %}
{%-     set ns.count = ns.count + 1 %}
{%-     set export_id = "xen_nfsroot-export-" ~ name %}
{%-     set mine_id = "xen_nfsroot-where-" ~ name %}
{%-     set keys_id = "xen_nfsroot-keys-" ~ name %}
{%-     do boots.append(name) %}
{%-     for dom0 in guest.dom0s if dom0 not in dom0s %}
{%-       do dom0s.append(dom0) %}
{%-     endfor %}
{%-     if not guest.absent %}
{%-       do before.append(export_id) %}
{%-     endif %}
{%-     if guest.absent or guest.autostart or "only" in selection %}
{%-       do verdicts.append(name) %}
{%-     endif %}

{{ export_id }}:
  salt.state:
    - tgt: {{ guest.nfs_server | json }}
    - sls: [xen_nfsroot.server]
    - pillar: {xen_nfsroot_guest: {{ name | json }}}
{%-     if guest.absent %}
    - require:
      - salt: xen_nfsroot-stopped-{{ name }}
{%-     endif %}

{%-     if guest.dom0s | length > 1 and not guest.absent %}

{{ keys_id }}:
  salt.state:
    - tgt: {{ guest.dom0s | json }}
    - tgt_type: list
    - sls: [xen_nfsroot.migrate_key]
{%-     endif %}
{%-     if guest.dom0s | length > 1 %}
{%-       do before.append(mine_id) %}

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
{%-   endif %}
{%- endfor %}
{%- if boots %}

{#- One boot step for every guest on all their dom0s: each dom0 boots the
    guests it runs at once and proves each boot (xen_nfsroot_guests). #}
xen_nfsroot-boot:
  salt.state:
    - tgt: {{ dom0s | json }}
    - tgt_type: list
    - sls: [xen_nfsroot.dom0]
    - pillar: {xen_nfsroot_guests: {{ boots | json }}, xen_nfsroot_boot: {{ ("only" in selection) | json }}, xen_nfsroot_retry: {{ (pillar.get("retry", False) is sameas true) | json }}}
{%-   if before %}
    - require:
{%-     for step in before %}
      - salt: {{ step }}
{%-     endfor %}
{%-   endif %}

{#- The verdicts wait for the boot step whatever its result (a require
    would skip them when one guest fails): this step runs only when the
    boot step failed, and succeeds. #}
xen_nfsroot-boot-ended:
  test.succeed_without_changes:
    - comment: the boot step failed; each guest's verdict says what became of it
    - onfail:
      - salt: xen_nfsroot-boot
{%- endif %}
{%- for name in verdicts %}
{%-   set guest = selected[name] %}
{%-   set toolstack = guest.states.xen_guest.get("toolstack") %}
{%-   if guest.absent %}

{#- Stopped on every dom0 before its export goes, whatever became of the
    other guests of the boot step. #}
xen_nfsroot-stopped-{{ name }}:
  salt.function:
    - name: guest_console.verdict
    - tgt: {{ guest.dom0s | json }}
    - tgt_type: list
    - arg: [{{ name | json }}]
    - kwarg: {absent: true, toolstack: {{ toolstack | json }}}
    - expect_minions: true
    - require:
      - test: xen_nfsroot-boot-ended
{%-   else %}

{#- Each guest's own verdict, after the boot step whatever its result: one
    guest's failed boot never stops another's next step. #}
xen_nfsroot-booted-{{ name }}:
  salt.function:
    - name: guest_console.verdict
    - tgt: {{ guest.dom0 | json }}
    - arg: [{{ name | json }}]
    - kwarg: {dom0s: {{ guest.dom0s | json }}, toolstack: {{ toolstack | json }}}
    - expect_minions: true
    - require:
      - test: xen_nfsroot-boot-ended

xen_nfsroot-mounted-{{ name }}:
  salt.state:
    - tgt: {{ guest.nfs_server | json }}
    - sls: [xen_nfsroot.mounted]
    - pillar: {xen_nfsroot_guest: {{ name | json }}}
    - require:
      - salt: xen_nfsroot-booted-{{ name }}
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
