{#- Highstate: a minion applies the formula when pillar names it the
    nfs_server or the dom0 of a guest (xen_nfsroot/init.sls then picks the
    side). Merge these lines into your own top.sls if you have one. -#}
{%- if salt["xen_nfsroot.roles"]() %}
base:
  {{ grains.id | json }}:
    - xen_nfsroot
{%- else %}
base: {}
{%- endif %}
