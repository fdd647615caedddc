"""Root-free tests: no container, no root, no writes outside temporary directories.

``./go unit`` runs this folder as the user nobody; the root suite runs it too.
"""
