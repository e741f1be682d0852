{#- Reactor for salt/minion/<id>/start: when a dom0 starts, its autostart
    guests are exported and booted (the orchestration selects them from
    pillar; a minion that runs no guest selects nothing). -#}
{%- set minion = data.get("id") %}
{%- if minion is string and minion | regex_match("^([A-Za-z0-9_.-]{1,128})$") %}
xen_nfsroot-reactor-autostart:
  runner.state.orchestrate:
    - args:
      - mods: orch.xen_nfsroot
      - pillar:
          dom0: {{ minion | json }}
          autostart_only: true
{%- endif %}
