{#- Reactor for xen_nfsroot/guest/boot, data {"guest": NAME}.
    The event's data is untrusted: only a well-formed guest name is taken
    from it and handed to the orchestration, which acts only on a guest that
    pillar defines; targets, paths and options all come from pillar.
    Anything else in the data is ignored. -#}
{%- set payload = data.get("data") if data.get("data") is mapping else data %}
{%- set guest = payload.get("guest") %}
{%- if guest is string and guest | regex_match("^([A-Za-z0-9_.:+-]{1,64})$") %}
xen_nfsroot-reactor-boot:
  runner.state.orchestrate:
    - args:
      - mods: orch.xen_nfsroot
      - pillar:
          guest: {{ guest | json }}
{%- else %}
{%-   do salt["log.warning"]("xen_nfsroot reactor: ignoring %s with no valid guest name: %r" % (tag, guest)) %}
{%- endif %}
