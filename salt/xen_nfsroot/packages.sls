{#- The NFS server's packages and service, by OS family (map.jinja); each
    can be switched off in pillar (xen_nfsroot:server:manage_packages,
    manage_service). Included by xen_nfsroot.server. -#}
{%- from "xen_nfsroot/map.jinja" import server with context %}
{%- if server.manage_packages %}

xen_nfsroot-server-packages:
  pkg.installed:
    - pkgs: {{ server.packages | json }}
{%- endif %}
{%- if server.manage_service %}

xen_nfsroot-server-service:
  service.running:
    - name: {{ server.service | json }}
    - enable: true
{%-   if server.manage_packages %}
    - require:
      - pkg: xen_nfsroot-server-packages
{%-   endif %}
{%- endif %}
