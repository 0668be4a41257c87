"""playbook-sync: keeps a Docusaurus playbook alive from captured call knowledge."""

__version__ = "0.1.0"
