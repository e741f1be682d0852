{#- The whole formula for this minion: the NFS server side for the guests it
    exports, the dom0 side for the guests it runs (by their minion ids in
    pillar). -#}
{%- set roles = salt["xen_nfsroot.roles"]() %}
{%- if roles %}
include:
{%-   for role in roles %}
  - xen_nfsroot.{{ role }}
{%-   endfor %}
{%- endif %}
