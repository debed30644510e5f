"""The embedded local stack: moto as the AWS emulator, provisioned from ``template.yaml``,
the gateway under uvicorn and one enrolled relay, all as child processes of
``flowlink local up`` (DESIGN §4).

Modules: ``cfn_template`` (template loading and intrinsics), ``provision`` (create the
template's tables, buckets, queues and state machines on any endpoint), ``moto_server``
(the emulator process), ``processes`` (child process groups), ``stack`` (the
orchestration, usable programmatically so tests can restart single components) and
``client_configs`` (ready-to-paste MCP client configs). Nothing here runs in Lambda.
"""
