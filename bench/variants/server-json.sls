#!jinja|json
{#- Experiment: the same states as server.sls, built in Jinja and emitted as
    one JSON document (Salt's json renderer parses in C; the yaml renderer
    parses in pure Python). -#}
{%- from "xen_nfsroot/map.jinja" import server with context %}
{%- set only = salt["pillar.get"]("xen_nfsroot_guest") or none %}
{%- set guests = salt["xen_nfsroot.guests"]("server", only=only) %}
{%- set high = {} %}
{%- if guests %}
{%-   if server.manage_packages %}
{%-     do high.update({"xen_nfsroot-server-packages": {"pkg.installed": [{"pkgs": server.packages}]}}) %}
{%-   endif %}
{%-   if server.manage_service %}
{%-     set args = [{"name": server.service}, {"enable": true}] %}
{%-     if server.manage_packages %}{% do args.append({"require": [{"pkg": "xen_nfsroot-server-packages"}]}) %}{% endif %}
{%-     do high.update({"xen_nfsroot-server-service": {"service.running": args}}) %}
{%-   endif %}
{%-   for name, guest in guests.items() %}
{%-     set export_id = "xen_nfsroot-export-" ~ name %}
{%-     if guest.absent %}
{%-       do high.update({export_id: {"nfs_export.absent": [{"name": guest.nfs_root}, {"exports": server.exports_file}, {"reload": false}]}}) %}
{%-     else %}
{%-       if guest.root_archive %}
{%-         set args = [{"name": guest.nfs_root}] %}
{%-         for key, value in guest.root_archive.items() %}{% do args.append({key: value}) %}{% endfor %}
{%-         do high.update({"xen_nfsroot-root-" ~ name: {"domu_root.populated": args}}) %}
{%-       endif %}
{%-       if guest.states.domu_fstab %}
{%-         set args = [] %}
{%-         for key, value in guest.states.domu_fstab.items() if value is not none %}{% do args.append({key: value}) %}{% endfor %}
{%-         if guest.root_archive %}{% do args.append({"require": [{"domu_root": "xen_nfsroot-root-" ~ name}]}) %}{% endif %}
{%-         do high.update({"xen_nfsroot-fstab-" ~ name: {"domu_fstab.nfs_root": args}}) %}
{%-       endif %}
{%-       set args = [] %}
{%-       for key, value in guest.states.nfs_export.items() %}{% do args.append({key: value}) %}{% endfor %}
{%-       do args.extend([{"exports": server.exports_file}, {"reload": false}]) %}
{%-       if guest.states.domu_fstab %}{% do args.append({"require": [{"domu_fstab": "xen_nfsroot-fstab-" ~ name}]}) %}{% endif %}
{%-       do high.update({export_id: {"nfs_export.present": args}}) %}
{%-     endif %}
{%-   endfor %}
{%-   do high.update({"xen_nfsroot-exports-applied": {"nfs_export.reloaded": [{"require": guests.keys() | map("regex_replace", "^", "xen_nfsroot-export-") | list}]}}) %}
{%- endif %}
{{ high | json }}
