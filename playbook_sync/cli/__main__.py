"""`python -m playbook_sync.cli`: the same as the `playbook-sync` console script."""

from playbook_sync.cli import main

main()
