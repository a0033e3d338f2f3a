"""pyinfra deploys that converge hosts to the spec, one module per concern.

Each deploy takes spec models and always declares the full desired state of its
concern; pyinfra no-ops what is already right. They run inside `reconcile` (through
the SSH worker) and under the plain pyinfra CLI:

    FLEET_STATE=state/demo.yaml pyinfra deploys/inventory.py deploys/fleet.py

Imports only `state` of ours.
"""
